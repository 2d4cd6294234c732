"""Models pulled by URL through the models API (`POST /api/models`): each pull's record in the shared store,
so its progress reads the same on every instance and on the gateway, updated as the download goes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from enum import StrEnum

from pydantic import BaseModel, ValidationError

from agent.errors import AgentError
from agent.logs import log_event
from agent.models.library import REPORT_EVERY, Models, origin
from agent.models.refs import ModelRef
from agent.stores.shared import SharedDocuments

logger = logging.getLogger("agent.models")

PREFIX = "model-pull-"  # a shared document's name is a task id's characters


class PullStatus(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Pull(BaseModel):
    pull_id: str
    url: str  # without its query or fragment
    folder: str
    status: PullStatus = PullStatus.RUNNING
    bytes: int = 0
    total: int | None = None
    name: str | None = None  # the model's file in its folder, once there
    source: str | None = None  # cached, downloaded or waited (on another run's download)
    error: dict[str, object] | None = None
    started_at: float
    finished_at: float | None = None


class Pulls:
    def __init__(self, models: Models, shared: SharedDocuments) -> None:
        self.models = models
        self.shared = shared
        self._running: dict[str, asyncio.Task[Pull]] = {}

    async def start(self, ref: ModelRef) -> Pull:
        """Begin a pull; its record is written before this returns, so a poll finds it on any instance."""
        pull = Pull(pull_id=uuid.uuid4().hex, url=origin(ref.url), folder=ref.kind, started_at=time.time())
        await self._write(pull)
        self._running[pull.pull_id] = task = asyncio.ensure_future(self._pull(pull, ref))
        task.add_done_callback(lambda _: self._running.pop(pull.pull_id, None))
        log_event(logger, "model.pull", pull=pull.pull_id, folder=ref.kind)
        return pull

    async def finished(self, pull_id: str) -> Pull:
        """The end of a pull this instance runs."""
        return await asyncio.shield(self._running[pull_id])

    async def get(self, pull_id: str) -> Pull | None:
        data = await self.shared.get_shared(PREFIX + pull_id)
        try:
            return Pull.model_validate_json(data) if data is not None else None
        except ValidationError:
            return None

    async def close(self) -> None:
        for task in list(self._running.values()):
            task.cancel()

    async def _pull(self, pull: Pull, ref: ModelRef) -> Pull:
        writes: asyncio.Task[None] | None = None

        def moved(done: int, total: int | None) -> None:
            nonlocal writes
            pull.bytes, pull.total = done, total
            if writes is None or writes.done():  # at most one write at a time: progress is a snapshot
                writes = asyncio.ensure_future(self._write(pull.model_copy()))

        try:
            fetched = await self.models.pull(ref, moved, f"pull-{pull.pull_id}")
            pull.status, pull.name, pull.source = PullStatus.SUCCEEDED, fetched.name, fetched.source
            pull.bytes = fetched.bytes
            pull.total = fetched.total
        except AgentError as exc:
            pull.status, pull.error = PullStatus.FAILED, exc.body()
        pull.finished_at = time.time()
        if writes is not None:
            with contextlib.suppress(AgentError, TimeoutError):
                await asyncio.wait_for(writes, REPORT_EVERY * 4)
        try:
            await self._write(pull)
        except AgentError as exc:  # the caller holding the request still hears the end
            log_event(logger, "model.pull_unrecorded", level=logging.ERROR, pull=pull.pull_id, error=exc)
        return pull

    async def _write(self, pull: Pull) -> None:
        await self.shared.put_shared(PREFIX + pull.pull_id, pull.model_dump_json().encode())
