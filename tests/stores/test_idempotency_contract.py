"""The rules every keeper of idempotency keys follows (agent/stores/idempotency.py), on every backend."""

from __future__ import annotations

import asyncio

from agent.stores import Stores


async def test_a_key_is_single_use(stores: Stores) -> None:
    assert await stores.idempotency.take("order-1", "job-a") is None
    assert await stores.idempotency.take("order-1", "job-b") == "job-a"
    assert await stores.idempotency.take("order-1", "job-a") == "job-a"  # its own job again: still a reuse
    assert await stores.idempotency.take("order-2", "job-b") is None


async def test_a_key_given_back_is_free_but_only_by_its_own_job(stores: Stores) -> None:
    key = "any printable text: / .. é"
    assert await stores.idempotency.take(key, "job-a") is None
    await stores.idempotency.give_back(key, "job-b")
    assert await stores.idempotency.take(key, "job-c") == "job-a"
    await stores.idempotency.give_back(key, "job-a")
    assert await stores.idempotency.take(key, "job-c") is None


async def test_of_many_takers_at_once_exactly_one_wins(stores: Stores) -> None:
    answers = await asyncio.gather(*(stores.idempotency.take("burst", f"job-{serial}") for serial in range(12)))
    winners = [serial for serial, answer in enumerate(answers) if answer is None]
    assert len(winners) == 1
    assert set(answers) == {None, f"job-{winners[0]}"}
