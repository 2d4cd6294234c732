"""The store's writer: every run's state goes to the shared task store, without the store setting the pace.

Through the outbox (agent/runs/outbox.py), the newest record of a task replaces the one still waiting and is
written at most every `interval` seconds, one write at a time: a poller gains nothing from more, and a run
shorter than the interval costs no progress write at all (its claim and its end are written anyway). The end is
written after any write still in flight, so an older record can never land over it, and it keeps trying for
`FINAL_WRITE_PATIENCE` seconds when the store is out. A running task is written at least every `heartbeat`
seconds, so readers on every instance know its owner lives; one timer does that for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agent.errors import AgentError
from agent.runs.events import (
    RunEnded,
    RunEvent,
    RunModelsProgressed,
    RunProgressed,
    RunQueued,
    RunStarted,
    RunSubmitted,
)
from agent.runs.outbox import Outbox
from agent.stores.records import TaskRecords
from agent.tasks.model import Results, Task

logger = logging.getLogger("agent.tasks")

PROGRESS_INTERVAL = 0.25
FINAL_WRITE_PATIENCE = 15.0  # seconds the end of a run keeps trying while the store is out
HEARTBEAT_TICK = 1.0

Record = tuple[Task, Results | None]  # a task's record, and its results once it ended


def _newest(_pending: Record | None, record: Record) -> Record:
    return record


class StoreWriter:
    """The subscriber that keeps the store current for every run of this instance."""

    def __init__(self, store: TaskRecords, heartbeat: float, interval: float = PROGRESS_INTERVAL) -> None:
        self.store = store
        self.heartbeat = heartbeat
        self.outbox: Outbox[Record, Record] = Outbox(self._write, _newest, interval, logger, "store")
        self._latest: dict[str, Task] = {}  # the runs of this instance that still run, as last heard of
        self._written_at: dict[str, float] = {}
        self._beat: asyncio.Task[None] | None = None

    def notify(self, event: RunEvent) -> None:
        task = event.task
        if isinstance(event, RunQueued):  # the claim wrote it
            self._latest[task.task_id], self._written_at[task.task_id] = task, time.time()
            if self._beat is None or self._beat.done():
                self._beat = asyncio.ensure_future(self._heartbeats())
        elif isinstance(event, RunModelsProgressed | RunSubmitted | RunStarted | RunProgressed) and (
                task.task_id in self._latest):
            self._latest[task.task_id] = task  # previews and raw outputs are not the task's record
            self.outbox.put(task.task_id, (task, None))

    async def settle(self, ended: RunEnded) -> None:
        """Write the end (and results); the last failure is raised: pollers would never see the end."""
        task_id = ended.task.task_id
        self._latest.pop(task_id, None)
        self._written_at.pop(task_id, None)
        written = self.outbox.close(task_id, (ended.task, ended.results))
        if written is not None:
            await written

    async def _write(self, task_id: str, record: Record) -> None:
        """A lost progress write must not fail the run (the next one carries the same state); the end is tried
        again while the store is out, for `FINAL_WRITE_PATIENCE` seconds."""
        task, results = record
        if not task.status.finished:
            await self.store.save(self._stamped(task))
            return
        deadline = time.monotonic() + FINAL_WRITE_PATIENCE
        delay = 0.1
        while True:
            try:
                await self.store.save(self._stamped(task), results)
                return
            except AgentError:
                if time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    def _stamped(self, task: Task) -> Task:
        """Every write is also a heartbeat: readers judge the owner alive by it."""
        now = time.time()
        if task.task_id in self._written_at:
            self._written_at[task.task_id] = now
        return task.model_copy(update={"heartbeat_at": now})

    async def _heartbeats(self) -> None:
        while self._latest:
            await asyncio.sleep(min(HEARTBEAT_TICK, self.heartbeat))
            now = time.time()
            for task_id, written_at in list(self._written_at.items()):
                if now - written_at >= self.heartbeat:
                    self.outbox.put(task_id, (self._latest[task_id], None))

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
