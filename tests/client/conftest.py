"""A task whose owner goes quiet and is then heard from again, as when another request held up that instance's
event loop: its record is written straight into the agent's store, as the owner would write it."""

from __future__ import annotations

import time

import pytest

from agent.api import streams
from agent.stores import Stores
from agent.tasks.model import Task, TaskStatus
from agent.tasks.view import task_view

QUIET_FOR = 3600.0  # far past any `stale_after`: the task reads as lost (InstanceLost)


@pytest.fixture
def quick_lost_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The agent's event stream looks at the task's record after 0.2 s without an entry, not 5 s: the end it
    tells from the record of a quiet task comes that much sooner (what it tells is the same)."""
    monkeypatch.setattr(streams, "READ_WAIT", 0.2)


class QuietOwner:
    def __init__(self, stores: Stores, task_id: str) -> None:
        self.records, self.log = stores.records, stores.log
        self.task = Task(task_id=task_id, status=TaskStatus.RUNNING, owner="another-instance")

    async def went_quiet(self) -> None:
        """The task runs on another instance, which has not written for an hour."""
        self.task.heartbeat_at = time.time() - QUIET_FOR
        await self.records.save(self.task)
        await self.log.append_events(self.task.task_id, [("status", {"status": "running"})])

    async def heard_again(self) -> None:
        """The owner writes again (a heartbeat) and tells its progress."""
        self.task.heartbeat_at = time.time()
        await self.records.save(self.task)
        await self.log.append_events(self.task.task_id, [("progress", {"nodes": {"1": {"max": 1, "value": 1}}})])

    async def ended(self) -> None:
        self.task.finish(TaskStatus.SUCCEEDED)
        await self.records.save(self.task)
        await self.log.append_events(self.task.task_id, [("end", task_view(self.task))])
