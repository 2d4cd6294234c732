"""The task store interface: how every instance shares task state, whatever holds it.

Rules every store follows (tests/tasks/test_store_contract.py checks them on all three):
- A claim follows the rules of agent/stores/claims.py (who may take a task id, who answers again, who is refused).
- A reader never sees a task "running" forever: an unfinished task whose owner has been silent for
  `stale_after` seconds reads as failed (InstanceLost).
- A task expires `ttl` seconds after it finished (or after its owner was last heard from).
- Progress is written often and read by pollers; results are large, written once and read on demand, so
  they are kept apart from the task record and a poll never loads them unless it asks.
- Shared documents (`put_shared`) are whole values under a name, outside any task.
- A task has an event log (what its event streams tell, on any instance): only its owner appends to it, a new
  claim of the id starts it afresh, and it lives as long as the task. Ids are increasing strings.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from agent.errors import TaskNotFound
from agent.stores.claims import decide_claim
from agent.tasks.model import Results, Task

PARSED_KEPT = 256  # records kept parsed, a few kilobytes each
END_POLL = 0.1  # how often a task another instance runs is looked at while its end is awaited


@dataclass(frozen=True)
class LoggedEvent:
    """One entry of a task's event log: `id` resumes a stream after it (`Last-Event-ID`)."""

    id: str
    kind: str
    data: dict[str, Any]


class TaskStore(ABC):
    def __init__(self, ttl: float, stale_after: float) -> None:
        self.ttl = ttl
        self.stale_after = stale_after
        self._parsed: OrderedDict[bytes | str, Task] = OrderedDict()

    def parse(self, raw: bytes | str) -> Task:
        """A stored record as a task (ValidationError when it is none). Most reads are polls of a task that has
        not changed since the last one, so the last PARSED_KEPT records' parses are kept and each reader gets
        its own shallow copy: a parse is most of a poll's work; a copy is a small fraction of it (a deep one
        costs more than the parse). So a reader sets a task's fields (as `finish` does) but never changes what
        they hold in place: that would change the kept parse."""
        parsed = self._parsed.get(raw)
        if parsed is None:
            parsed = self._parsed[raw] = Task.model_validate_json(raw)
            if len(self._parsed) > PARSED_KEPT:
                self._parsed.popitem(last=False)
        else:
            self._parsed.move_to_end(raw)
        return parsed.model_copy()

    @abstractmethod
    async def claim(self, task: Task) -> Task | None:
        """Take the id for `task`, or return the succeeded task to answer again (see the rules above)."""

    @abstractmethod
    async def save(self, task: Task, results: Results | None = None) -> None:
        """Write the task; results, when given, are written first, so whoever sees the end finds them."""

    @abstractmethod
    async def load(self, task_id: str) -> Task | None:
        """The stored task as written, or None when absent or expired."""

    @abstractmethod
    async def get_results(self, task_id: str) -> Results | None: ...

    @abstractmethod
    async def request_cancel(self, task_id: str) -> None:
        """Leave word for the task's owner, wherever it runs, to stop it."""

    @abstractmethod
    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        """Of these tasks, the ones with a cancel request: one round trip for every run an instance holds."""

    @abstractmethod
    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """Add `(kind, data)` entries to the task's event log, in order."""

    @abstractmethod
    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        """The log's entries after the one with id `after` (from the start for None, or an id this store never
        gave), waiting up to `wait` seconds for one when there is none yet."""

    @abstractmethod
    async def put_shared(self, name: str, data: bytes) -> None:
        """Keep a document every instance reads (ComfyUI's `/object_info`, for a gateway that has no ComfyUI);
        written whole, replacing the last one; it does not expire."""

    @abstractmethod
    async def get_shared(self, name: str) -> bytes | None: ...

    async def sweep(self) -> int:
        """Remove expired tasks the store would not drop by itself; returns how many went."""
        return 0

    async def close(self) -> None:
        return None

    async def get(self, task_id: str) -> Task | None:
        """The task as any reader must see it (a stale one reads as failed)."""
        task = await self.load(task_id)
        return None if task is None else task.as_seen(time.time(), self.stale_after)

    async def find(self, task_id: str) -> Task:
        """`get` for a task a caller names: one that is absent or expired is TaskNotFound (404)."""
        task = await self.get(task_id)
        if task is None:
            raise TaskNotFound(f"no task {task_id}", task_id=task_id)
        return task

    async def ended_within(self, task: Task, seconds: float) -> Task:
        """The task once it has ended (as another instance writes it), or as it is after `seconds`."""
        deadline = time.monotonic() + seconds
        while not task.status.finished and time.monotonic() < deadline:
            await asyncio.sleep(END_POLL)
            task = await self.get(task.task_id) or task
        return task

    def decide_claim(self, existing: Task | None, new: Task) -> Task | None:
        """Inside every store's atomic claim: the rules (agent/stores/claims.py) at this moment."""
        return decide_claim(existing, new, time.time(), self.stale_after)

    def expired(self, task: Task) -> bool:
        return task.expired(time.time(), self.ttl)
