"""A task's event log: what its event streams tell, on any instance.

Only the task's owner appends to it, one append at a time; readers anywhere follow it. Entry ids are increasing
strings a reader resumes after (`Last-Event-ID`). The log lives as long as its task, and a claim that starts the
id afresh clears it (agent/stores/records.py says how). tests/stores/test_log_contract.py checks every backend.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LoggedEvent:
    """One entry of a task's event log: `id` resumes a stream after it (`Last-Event-ID`)."""

    id: str
    kind: str
    data: dict[str, Any]


class EventLog(ABC):
    @abstractmethod
    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Add `(kind, data)` entries to the task's event log, in order."""

    @abstractmethod
    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        """The log's entries after the one with id `after` (from the start for None, or an id this log never
        gave), waiting up to `wait` seconds for one when there is none yet."""


class Wakeups:
    """Readers in this process waiting for a task's next entry, woken as soon as this process appends one (the
    common case: a stream on the instance that runs the task), instead of at their next look."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Event] = {}

    def wake(self, task_id: str) -> None:
        waiting = self._waiting.pop(task_id, None)
        if waiting is not None:
            waiting.set()

    async def wait(self, task_id: str, timeout: float) -> None:
        """Until this process appends to the task's log, or `timeout` seconds."""
        appended = self._waiting.setdefault(task_id, asyncio.Event())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(appended.wait(), timeout)
