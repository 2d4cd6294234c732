"""The rules every keeper of the keys' meters follows (agent/stores/meters.py), on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.stores import Stores
from agent.stores.meters import refill

pytestmark = pytest.mark.timeout(30)


def test_a_bucket_refills_at_its_rate() -> None:
    assert refill(0.0, 0.0, 6.0, 60) == (5.0, 0.0)  # six seconds at one a second, one taken
    assert refill(0.5, 10.0, 10.0, 60) == (0.5, 0.5)  # half a token: half a second to wait
    assert refill(3.0, 0.0, 3600.0, 5) == (4.0, 0.0)  # never more than a minute's worth


async def test_a_bucket_gives_its_minute_then_says_how_long_to_wait(stores: Stores) -> None:
    now = time.time()
    waits = [await stores.meters.take("shop", 3, now) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(20.0, abs=0.01)
    assert await stores.meters.take("shop", 3, now + 20.5) == 0.0
    assert await stores.meters.take("other-key", 3, now) == 0.0  # each key its own bucket


async def test_a_burst_of_takers_at_once_gets_the_minute_exactly(stores: Stores) -> None:
    now = time.time()
    waits = await asyncio.gather(*(stores.meters.take("burst", 5, now) for _ in range(12)))
    assert sum(wait == 0 for wait in waits) == 5


async def test_leases_hold_at_most_the_limit_and_free_on_release(stores: Stores) -> None:
    until = time.time() + 60
    granted = await asyncio.gather(*(stores.meters.lease("shop", f"task-{n}", 4, until) for n in range(10)))
    assert sum(granted) == 4
    held = [f"task-{n}" for n, ok in enumerate(granted) if ok]
    assert await stores.meters.leased("shop", time.time()) == 4
    assert await stores.meters.lease("shop", held[0], 4, until)  # holding it again
    assert not await stores.meters.lease("shop", "task-late", 4, until)
    await stores.meters.release("shop", held[0])
    assert await stores.meters.lease("shop", "task-late", 4, until)
    assert await stores.meters.leased("other-key", time.time()) == 0


async def test_a_lease_nobody_released_lapses(stores: Stores) -> None:
    assert await stores.meters.lease("shop", "task-1", 1, time.time() + 0.2)
    assert not await stores.meters.lease("shop", "task-2", 1, time.time() + 60)
    assert await stores.meters.leased("shop", time.time() + 1) == 0  # as seen a second later
