"""Save a running task's progress without letting the store set the pace of the run.

Changes are folded together and written at most every `interval` seconds, one write at a time: a poller
gains nothing from more, and a run shorter than the interval costs no progress write at all (its claim and its
final state are written anyway). The final state is written after any write still in flight, so an older
snapshot can never land over it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from agent.errors import AgentError
from agent.logs import log_event
from agent.tasks.model import Results, Task
from agent.tasks.store import TaskStore

logger = logging.getLogger("agent.tasks")

PROGRESS_INTERVAL = 0.25
FINAL_WRITE_PATIENCE = 15.0  # seconds the final write of a run keeps trying while the store is out


class TaskSaver:
    def __init__(self, store: TaskStore, task: Task, interval: float = PROGRESS_INTERVAL) -> None:
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
