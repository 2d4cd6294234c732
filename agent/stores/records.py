"""Task records: what a task is and how it ended, claimed and written by its owner, read by pollers anywhere.

Rules every backend follows (tests/stores/test_records_contract.py checks them on all of them):
- A claim follows the rules of agent/stores/claims.py (who may take a task id, who answers again, who is refused).
- A reader never sees a task "running" forever: an unfinished task whose owner has been silent for
  `stale_after` seconds reads as failed (InstanceLost).
- A task expires `ttl` seconds after it finished (or after its owner was last heard from).
- Progress is written often and read by pollers; results are large, written once and read on demand, so
  they are kept apart from the record and a poll never loads them unless it asks.
- A claim that starts an id afresh clears, in the same atomic step, the id's results and what the other concerns
  of the same backend hold for it: its event log (agent/stores/log.py) and its cancel request
  (agent/stores/cancels.py). This is the one place the concerns meet: a claim must never leave an old log under a
  new run, nor lose a cancel request made after it. A worker's delivery of a handed-off task (`takes_over`)
  continues the task and keeps both. An expired task takes its log and cancel request with it.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections import OrderedDict

from agent.errors import TaskNotFound
from agent.stores.claims import decide_claim
from agent.tasks.model import Results, Task

PARSED_KEPT = 256  # records kept parsed, a few kilobytes each
END_POLL = 0.1  # how often a task another instance runs is looked at while its end is awaited


class TaskRecords(ABC):
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
    async def sweep(self) -> int:
        """Remove expired tasks the backend would not drop by itself; returns how many went."""

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
        """Inside every backend's atomic claim: the rules (agent/stores/claims.py) at this moment."""
        return decide_claim(existing, new, time.time(), self.stale_after)

    def expired(self, task: Task) -> bool:
        return task.expired(time.time(), self.ttl)
