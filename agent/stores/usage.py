"""The usage ledger: one entry per ended run, under the UTC day it ended, with what it used; and, beside it, the
GPU seconds each key used per day, summed as entries come, so a quota is one read however many runs a key made.
tests/stores/test_usage_contract.py checks every backend.
"""

from __future__ import annotations

import datetime
from abc import ABC, abstractmethod

from pydantic import BaseModel

LEDGER_DAYS = 400  # how long a day's entries are kept: a year's reports and the month before it


class Used(BaseModel):
    """What runs used. `gpu_seconds` is execution in ComfyUI (what FC bills a GPU instance for, a run at a time);
    `cost` that at the configured price, None without one."""

    queue_seconds: float = 0.0
    gpu_seconds: float = 0.0
    model_seconds: float = 0.0
    input_bytes: int = 0
    output_bytes: int = 0
    cost: float | None = None


class UsageEntry(Used):
    """What one run used."""

    task_id: str
    key: str
    ended_at: float
    status: str

    @property
    def day(self) -> str:
        return day_of(self.ended_at)


def day_of(when: float) -> str:
    return datetime.datetime.fromtimestamp(when, datetime.UTC).date().isoformat()


class UsageLedger(ABC):
    @abstractmethod
    async def record(self, entry: UsageEntry) -> None:
        """Add a run's entry; a second one for the same task (a retried write) is not counted again."""

    @abstractmethod
    async def entries(self, day: str) -> list[UsageEntry]:
        """The day's entries (`YYYY-MM-DD`, UTC), in no particular order."""

    @abstractmethod
    async def gpu_seconds(self, key: str, days: list[str]) -> list[float]:
        """The GPU seconds `key` used on each of these days, in their order: one read however many runs."""
