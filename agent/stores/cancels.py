"""The cancel mailbox: word left for a task's owner, wherever it runs, to stop the task.

Any instance asks; the owner looks for requests for all the runs it holds in one round trip. A request lives as
long as its task, and a claim that starts the id afresh clears it (agent/stores/records.py says how).
tests/stores/test_cancels_contract.py checks every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection


class CancelMailbox(ABC):
    @abstractmethod
    async def request_cancel(self, task_id: str) -> None:
        """Leave word for the task's owner, wherever it runs, to stop it."""

    @abstractmethod
    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        """Of these tasks, the ones with a cancel request: one round trip for every run an instance holds."""
