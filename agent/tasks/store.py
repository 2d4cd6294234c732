"""The task store interface: how every instance shares task state, whatever holds it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from urllib.parse import urlsplit

from agent.errors import TaskConflict
from agent.tasks.model import Results, Task


class TaskStore(ABC):
    """Progress is written often and read by pollers; results are large, written once and read on demand,
    so they live apart from the task record and a poll of a running task never touches them."""

    def __init__(self, ttl: int) -> None:
        self.ttl = ttl

    @abstractmethod
    async def create(self, task: Task) -> None:
        """Claim the id for a new run; a task still queued or running under the same id is a conflict.

        A finished task's id may be used again: the new run replaces it and its old results are dropped
        (this is what a retry of a failed asynchronous invocation with the same id needs).
        """

    @abstractmethod
    async def save(self, task: Task, results: Results | None = None) -> None:
        """Write the task; results, when given, are written first, so whoever sees the end finds them."""

    @abstractmethod
    async def get(self, task_id: str) -> Task | None: ...

    @abstractmethod
    async def get_results(self, task_id: str) -> Results | None: ...

    async def close(self) -> None:
        return None

    def expired(self, task: Task, now: float) -> bool:
        return task.finished_at is not None and now - task.finished_at > self.ttl


def conflict(existing: Task) -> TaskConflict:
    return TaskConflict(f"task {existing.task_id} is already {existing.status.value}", task_id=existing.task_id)


def open_store(url: str, ttl: int) -> TaskStore:
    from agent.tasks.file import FileStore
    from agent.tasks.memory import MemoryStore

    parts = urlsplit(url)
    if parts.scheme == "memory":
        return MemoryStore(ttl)
    if parts.scheme == "file":
        return FileStore(parts.netloc + parts.path, ttl)
    raise ValueError(f"unsupported task store {url!r}")
