"""One backend's concerns, opened together so they share its connection or folder, and closed together."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.stores.cancels import CancelMailbox
from agent.stores.idempotency import IdempotencyKeys
from agent.stores.jobs import JobIndex
from agent.stores.keys import ApiKeys
from agent.stores.log import EventLog
from agent.stores.meters import Meters
from agent.stores.records import TaskRecords
from agent.stores.shared import SharedDocuments
from agent.stores.usage import UsageLedger
from agent.stores.workflows import PublishedWorkflows


@dataclass(frozen=True)
class Stores:
    records: TaskRecords
    log: EventLog
    cancels: CancelMailbox
    shared: SharedDocuments
    jobs: JobIndex
    idempotency: IdempotencyKeys
    workflows: PublishedWorkflows
    api_keys: ApiKeys
    meters: Meters
    usage: UsageLedger
    release: Callable[[], Awaitable[None]]  # the backend's connection or spare files, once all are done

    async def close(self) -> None:
        await self.release()
