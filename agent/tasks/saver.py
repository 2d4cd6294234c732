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

from agent.logs import log_event
from agent.tasks.model import Results, Task
from agent.tasks.store import TaskStore

logger = logging.getLogger("agent.tasks")

PROGRESS_INTERVAL = 0.25


class TaskSaver:
    def __init__(self, store: TaskStore, task: Task, interval: float = PROGRESS_INTERVAL) -> None:
        self.store = store
        self.task = task
        self.interval = interval
        self._dirty = False
        self._pacer: asyncio.Task[None] | None = None
        self._write: asyncio.Task[None] | None = None
        self.last_write_at = time.time()

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
        self._stamp()
        try:
            await self.store.save(self.task)
        except Exception as exc:  # a lost progress write must not fail the run; the final write is not lost
            log_event(logger, "store.write_failed", self.task.task_id, level=logging.WARNING, error=exc)

    async def flush(self, results: Results | None = None) -> None:
        """Write the final state (and results); a failure here is raised: pollers would never see the end."""
        if self._pacer is not None:
            self._pacer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pacer
        if self._write is not None:
            await self._write
        self._dirty = False
        self._stamp()
        await self.store.save(self.task, results)
