"""The rules every event log follows (agent/stores/log.py), on every backend."""

from __future__ import annotations

import asyncio

from agent.stores import Stores
from waiting import EVENTUALLY


async def test_the_event_log_reads_back_in_order_after_any_id(stores: Stores) -> None:
    log = stores.log
    await log.append_events("t-1", [("status", {"status": "queued"}), ("progress", {"nodes": {"1": {"max": 1}}})])
    await log.append_events("t-1", [("end", {"status": "succeeded"})])
    logged = await log.read_events("t-1", None, 0)
    assert [(entry.kind, entry.data) for entry in logged] == [
        ("status", {"status": "queued"}), ("progress", {"nodes": {"1": {"max": 1}}}), ("end", {"status": "succeeded"})]
    assert len({entry.id for entry in logged}) == 3
    assert [entry.kind for entry in await log.read_events("t-1", logged[0].id, 0)] == ["progress", "end"]
    assert await log.read_events("t-1", logged[-1].id, 0) == []
    assert await log.read_events("other", None, 0) == []


async def test_a_read_waits_for_the_next_entry(stores: Stores) -> None:
    log = stores.log
    await log.append_events("t-1", [("status", {"status": "queued"})])
    [queued] = await log.read_events("t-1", None, 0)
    waiting = asyncio.ensure_future(log.read_events("t-1", queued.id, EVENTUALLY))
    await asyncio.sleep(0)  # a yield, not a wait: the read starts before the entry comes (it finds it either way)
    await log.append_events("t-1", [("status", {"status": "running"})])
    [running] = await waiting  # bounded by the read's own wait
    assert running.data == {"status": "running"}
