"""A store inside this process: for a single instance and for tests, never for FC (pollers hit any instance)."""

from __future__ import annotations

import time

from agent.tasks.model import Results, Task
from agent.tasks.store import TaskStore, conflict


class MemoryStore(TaskStore):
    def __init__(self, ttl: int) -> None:
        super().__init__(ttl)
        self._tasks: dict[str, str] = {}
        self._results: dict[str, Results] = {}

    async def create(self, task: Task) -> None:
        existing = await self.get(task.task_id)
        if existing is not None and not existing.status.finished:
            raise conflict(existing)
        self._results.pop(task.task_id, None)
        await self.save(task)

    async def save(self, task: Task, results: Results | None = None) -> None:
        if results is not None:
            self._results[task.task_id] = results
        self._tasks[task.task_id] = task.model_dump_json()

    async def get(self, task_id: str) -> Task | None:
        raw = self._tasks.get(task_id)
        if raw is None:
            return None
        task = Task.model_validate_json(raw)
        if self.expired(task, time.time()):
            self._tasks.pop(task_id, None)
            self._results.pop(task_id, None)
            return None
        return task

    async def get_results(self, task_id: str) -> Results | None:
        return self._results.get(task_id)
