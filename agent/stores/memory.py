"""A store inside this process: for a single instance and for tests, never for FC (pollers hit any instance)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Collection
from typing import Any

from agent.stores.base import LoggedEvent, TaskStore
from agent.stores.claims import takes_over
from agent.tasks.model import Results, Task, check_task_id


class MemoryStore(TaskStore):
    """Tasks kept serialised, so a reader gets its own copy, as from any other store."""

    def __init__(self, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self._tasks: dict[str, str] = {}
        self._results: dict[str, Results] = {}
        self._cancels: set[str] = set()
        self._events: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self._appended: dict[str, asyncio.Event] = {}
        self._shared: dict[str, bytes] = {}

    async def claim(self, task: Task) -> Task | None:
        existing = await self.load(task.task_id)
        replay = self.decide_claim(existing, task)
        if replay is None:
            self._results.pop(task.task_id, None)
            if not takes_over(existing, task):
                self._cancels.discard(task.task_id)
                self._events.pop(task.task_id, None)
            await self.save(task)
        return replay

    async def save(self, task: Task, results: Results | None = None) -> None:
        task_id = check_task_id(task.task_id)  # the same ids as every other store, though no path is at stake
        if results is not None:
            self._results[task_id] = results
        self._tasks[task_id] = task.model_dump_json()

    async def load(self, task_id: str) -> Task | None:
        raw = self._tasks.get(check_task_id(task_id))
        if raw is None:
            return None
        task = self.parse(raw)
        if self.expired(task):
            self._drop(task_id)
            return None
        return task

    def _drop(self, task_id: str) -> None:
        self._tasks.pop(task_id, None)
        self._results.pop(task_id, None)
        self._cancels.discard(task_id)
        self._events.pop(task_id, None)

    async def get_results(self, task_id: str) -> Results | None:
        return self._results.get(task_id)

    async def request_cancel(self, task_id: str) -> None:
        self._cancels.add(check_task_id(task_id))

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        return self._cancels.intersection(task_ids)

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        self._events.setdefault(check_task_id(task_id), []).extend(events)
        self._appended.pop(task_id, asyncio.Event()).set()

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        start = int(after) if after is not None and after.isdigit() else 0
        if len(self._events.get(task_id, ())) <= start and wait > 0:
            appended = self._appended.setdefault(check_task_id(task_id), asyncio.Event())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(appended.wait(), wait)
        logged = self._events.get(task_id, [])
        return [LoggedEvent(str(number), kind, data)
                for number, (kind, data) in enumerate(logged[start:], start=start + 1)]

    async def put_shared(self, name: str, data: bytes) -> None:
        self._shared[check_task_id(name)] = data

    async def get_shared(self, name: str) -> bytes | None:
        return self._shared.get(check_task_id(name))

    async def sweep(self) -> int:
        expired = [task_id for task_id in list(self._tasks) if await self.load(task_id) is None]
        return len(expired)
