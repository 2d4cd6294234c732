"""Meters every instance shares, per API key: a token bucket for requests per minute, and leases on runs at
once. Each is one atomic step in the store (a Lua script in Redis, a lock file in a folder), so a burst spread
over many instances and a gateway never gets more than a key's limit. tests/stores/test_meters_contract.py checks
every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


def refill(tokens: float, last: float, now: float, per_minute: int) -> tuple[float, float]:
    """A bucket of `per_minute` tokens that refills at `per_minute` a minute: (tokens after taking one, or below
    1 when none was there; seconds until one is). The Redis script does the same sums."""
    tokens = min(float(per_minute), tokens + max(0.0, now - last) * per_minute / 60)
    if tokens >= 1:
        return tokens - 1, 0.0
    return tokens, (1 - tokens) * 60 / per_minute


class Meters(ABC):
    @abstractmethod
    async def take(self, name: str, per_minute: int, now: float) -> float:
        """Take one request from `name`'s bucket: 0 when taken, else the seconds until one can be."""

    @abstractmethod
    async def lease(self, name: str, task_id: str, most: int, until: float) -> bool:
        """Hold one of `name`'s `most` places for `task_id` until `until` at the latest (a lease nobody
        released, its run's instance gone, lapses then); False when all are held. Holding it again is True."""

    @abstractmethod
    async def release(self, name: str, task_id: str) -> None:
        """`task_id`'s run ended (or never began): its place is free."""

    @abstractmethod
    async def leased(self, name: str, now: float) -> int:
        """How many places `name` holds now."""
