"""The store's writer: every run's state goes to the shared task store, without the store setting the pace.

Changes are folded together and written at most every `interval` seconds per task, one write at a time: a poller
gains nothing from more, and a run shorter than the interval costs no progress write at all (its claim and its
end are written anyway). The end is written after any write still in flight, so an older snapshot can never
land over it, and it keeps trying for a while when the store is out. A running task is written at least every
`heartbeat` seconds, so readers on every instance know its owner lives; one timer does that for all of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agent.errors import AgentError
from agent.logs import log_event
from agent.runs.events import RunEnded, RunEvent, RunProgressed, RunQueued, RunStarted, RunSubmitted
from agent.stores.records import TaskRecords
from agent.tasks.model import Results, Task

logger = logging.getLogger("agent.tasks")

PROGRESS_INTERVAL = 0.25
FINAL_WRITE_PATIENCE = 15.0  # seconds the end of a run keeps trying while the store is out
HEARTBEAT_TICK = 1.0


class TaskSaver:
    """One task's writes."""

    def __init__(self, store: TaskRecords, task: Task, interval: float = PROGRESS_INTERVAL) -> None:
        self.store = store
        self.task = task
        self.interval = interval
        self._dirty = False
        self._pacer: asyncio.Task[None] | None = None
        self._write: asyncio.Task[None] | None = None
        self.last_write_at = time.time()
        self._failing = False

    def changed(self) -> None:
        self._dirty = True
        if self._pacer is None or self._pacer.done():
            self._pacer = asyncio.create_task(self._pace())

    async def _pace(self) -> None:
        while self._dirty:
            await asyncio.sleep(self.interval)
            self._dirty = False
            self._write = asyncio.create_task(self._save_progress())
            await asyncio.shield(self._write)

    def _stamp(self) -> None:
        """Every write is also a heartbeat: readers judge the owner alive by it."""
        self.last_write_at = self.task.heartbeat_at = time.time()

    async def _save_progress(self) -> None:
        """A lost progress write must not fail the run (the next one carries the same state, the final one is
        retried); an outage is logged once, and its end once."""
        self._stamp()
        try:
            await self.store.save(self.task)
        except AgentError as exc:
            if not self._failing:
                log_event(logger, "store.write_failed", self.task.task_id, level=logging.WARNING, error=exc)
            self._failing = True
        else:
            if self._failing:
                log_event(logger, "store.write_recovered", self.task.task_id)
            self._failing = False

    async def flush(self, results: Results | None = None, patience: float = FINAL_WRITE_PATIENCE) -> None:
        """Write the final state (and results), trying again for `patience` seconds while the store is out:
        pollers would never see the end otherwise. The last failure is raised."""
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
        if self._write is not None:
            await self._write
        self._dirty = False
        deadline = time.monotonic() + patience
        delay = 0.1
        while True:
            self._stamp()
            try:
                await self.store.save(self.task, results)
                return
            except AgentError:
                if time.monotonic() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


class StoreWriter:
    """The subscriber that keeps the store current for every run of this instance."""

    def __init__(self, store: TaskRecords, heartbeat: float, interval: float = PROGRESS_INTERVAL) -> None:
        self.store = store
        self.heartbeat = heartbeat
        self.interval = interval
        self._savers: dict[str, TaskSaver] = {}
        self._beat: asyncio.Task[None] | None = None

    def notify(self, event: RunEvent) -> None:
        task_id = event.task.task_id
        if isinstance(event, RunQueued):  # the claim wrote it
            self._savers[task_id] = TaskSaver(self.store, event.task, self.interval)
            if self._beat is None or self._beat.done():
                self._beat = asyncio.ensure_future(self._heartbeats())
        elif isinstance(event, RunSubmitted | RunStarted | RunProgressed) and task_id in self._savers:
            self._savers[task_id].changed()  # previews and raw outputs are not the task's record

    async def settle(self, ended: RunEnded) -> None:
        saver = self._savers.pop(ended.task.task_id, None) or TaskSaver(self.store, ended.task, self.interval)
        await saver.flush(ended.results)

    async def _heartbeats(self) -> None:
        while self._savers:
            await asyncio.sleep(min(HEARTBEAT_TICK, self.heartbeat))
            now = time.time()
            for saver in list(self._savers.values()):
                if now - saver.last_write_at >= self.heartbeat:
                    saver.changed()

    async def close(self) -> None:
        if self._beat is not None:
            self._beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._beat
