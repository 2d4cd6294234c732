"""The rules every keeper of the usage ledger follows (agent/stores/usage.py), on every backend."""

from __future__ import annotations

import asyncio
import datetime

import pytest

from agent.stores import Stores
from agent.stores.usage import UsageEntry, day_of

pytestmark = pytest.mark.timeout(30)
NOON = datetime.datetime(2026, 12, 6, 12, tzinfo=datetime.UTC).timestamp()


def entry(task_id: str, key: str, ended_at: float, gpu: float) -> UsageEntry:
    return UsageEntry(task_id=task_id, key=key, ended_at=ended_at, status="succeeded", gpu_seconds=gpu,
                      queue_seconds=0.5, input_bytes=10, output_bytes=20)


async def test_entries_are_kept_by_day_and_gpu_seconds_summed_by_key(stores: Stores) -> None:
    await asyncio.gather(*(stores.usage.record(entry(f"t{n}", "shop", NOON + n, 1.25)) for n in range(8)))
    await stores.usage.record(entry("other", "studio", NOON, 3.0))
    await stores.usage.record(entry("tomorrow", "shop", NOON + 86400, 2.0))
    today = await stores.usage.entries("2026-12-06")
    assert sorted(item.task_id for item in today) == sorted([f"t{n}" for n in range(8)] + ["other"])
    assert await stores.usage.gpu_seconds("shop", ["2026-12-06"]) == pytest.approx([10.0])
    assert await stores.usage.gpu_seconds("shop", ["2026-12-06", "2026-12-07"]) == pytest.approx([10.0, 2.0])
    assert await stores.usage.gpu_seconds("studio", ["2026-12-07", "2026-12-06"]) == [0, 3.0]
    await stores.usage.record(entry("t0", "shop", NOON, 1.25))  # a run's entry again (a retried write)
    assert await stores.usage.gpu_seconds("shop", ["2026-12-06"]) == pytest.approx([10.0])
    assert await stores.usage.entries("2026-12-05") == []


def test_a_day_is_the_utc_date() -> None:
    assert day_of(NOON) == "2026-12-06"
    assert entry("t", "k", NOON + 12 * 3600, 0).day == "2026-12-07"  # midnight UTC
