"""The task store, counted: every operation that fails for the store's own trouble (StoreUnavailable) adds to
`store_errors_total` by operation; a caller's error (a conflict) does not."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from agent.errors import StoreUnavailable
from agent.metrics import Metrics
from agent.stores.base import LoggedEvent, TaskStore
from agent.tasks.model import Results, Task

T = TypeVar("T")


class MeteredStore(TaskStore):
    def __init__(self, store: TaskStore, metrics: Metrics) -> None:
        super().__init__(store.ttl, store.stale_after)
        self.store = store
        self.metrics = metrics

    async def _counted(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except StoreUnavailable:
            self.metrics.store_errors.labels(operation).inc()
            raise

    async def claim(self, task: Task) -> Task | None:
        return await self._counted("claim", lambda: self.store.claim(task))

    async def save(self, task: Task, results: Results | None = None) -> None:
        await self._counted("save", lambda: self.store.save(task, results))

    async def load(self, task_id: str) -> Task | None:
        return await self._counted("load", lambda: self.store.load(task_id))

    async def get_results(self, task_id: str) -> Results | None:
        return await self._counted("get_results", lambda: self.store.get_results(task_id))

    async def request_cancel(self, task_id: str) -> None:
        await self._counted("request_cancel", lambda: self.store.request_cancel(task_id))

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        return await self._counted("cancels_requested", lambda: self.store.cancels_requested(task_ids))

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        await self._counted("append_events", lambda: self.store.append_events(task_id, events))

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        return await self._counted("read_events", lambda: self.store.read_events(task_id, after, wait))

    async def put_shared(self, name: str, data: bytes) -> None:
        await self._counted("put_shared", lambda: self.store.put_shared(name, data))

    async def get_shared(self, name: str) -> bytes | None:
        return await self._counted("get_shared", lambda: self.store.get_shared(name))

    async def sweep(self) -> int:
        return await self._counted("sweep", self.store.sweep)

    async def close(self) -> None:
        await self.store.close()
