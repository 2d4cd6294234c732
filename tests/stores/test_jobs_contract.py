"""The rules every jobs index follows (agent/stores/jobs.py), on every backend."""

from __future__ import annotations

import time
import uuid

from agent.stores import Stores
from agent.stores.jobs import JobEntry, created_at, new_job_id
from stores.conftest import TTL


def test_job_ids_sort_by_the_time_they_were_made() -> None:
    now = time.time()
    made = [new_job_id(now + offset / 1000) for offset in range(0, 50, 5)]
    assert made == sorted(made)
    assert abs((created_at(made[0]) or 0) - now) < 0.002
    assert uuid.UUID(made[0]).version == 7
    assert created_at(str(uuid.uuid4())) is None
    assert created_at("not-an-id") is None
    assert created_at(made[0].upper()) is None  # one spelling per id: it is also a store key
    in_a_row = [new_job_id() for _ in range(2000)]  # many in one millisecond: still in the order made
    assert in_a_row == sorted(in_a_row) and len(set(in_a_row)) == len(in_a_row)


async def test_pages_run_newest_first_and_a_cursor_is_not_shifted_by_new_jobs(stores: Stores) -> None:
    now = time.time()
    ids = [new_job_id(now - 10 + serial * 0.01) for serial in range(7)]
    for job_id in ids:
        await stores.jobs.add(JobEntry(job_id=job_id))
    first = await stores.jobs.page(None, 3)
    assert first == ids[::-1][:3]
    await stores.jobs.add(JobEntry(job_id=new_job_id(now)))  # a newer job arrives between two pages
    second = await stores.jobs.page(first[-1], 3)
    third = await stores.jobs.page(second[-1], 3)
    assert second + third == ids[::-1][3:]
    assert await stores.jobs.page(ids[0], 3) == []


async def test_an_entry_keeps_its_labels_and_graph(stores: Stores) -> None:
    job_id = new_job_id()
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "text": "é\n\"x\""}}}
    await stores.jobs.add(JobEntry(job_id=job_id, labels={"user": "ann", "run": "7"}, graph=graph))
    entry = await stores.jobs.entry(job_id)
    assert entry is not None and entry.labels == {"user": "ann", "run": "7"} and entry.graph == graph
    assert await stores.jobs.entry(new_job_id()) is None


async def test_an_entry_older_than_its_life_is_gone(stores: Stores) -> None:
    old, young = new_job_id(time.time() - TTL - 5), new_job_id()
    await stores.jobs.add(JobEntry(job_id=old))
    await stores.jobs.add(JobEntry(job_id=young))
    assert await stores.jobs.entry(old) is None
    assert await stores.jobs.page(None, 10) == [young]


async def test_a_removed_entry_is_neither_read_nor_listed(stores: Stores) -> None:
    kept, removed = new_job_id(), new_job_id()
    await stores.jobs.add(JobEntry(job_id=kept))
    await stores.jobs.add(JobEntry(job_id=removed))
    await stores.jobs.remove(removed)
    await stores.jobs.remove(new_job_id())  # never indexed: nothing to do
    assert await stores.jobs.entry(removed) is None
    assert await stores.jobs.page(None, 10) == [kept]
