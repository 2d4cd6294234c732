"""The rules every backend's task records follow (agent/stores/records.py), on every backend: among them, what a
claim clears of the other concerns (the one place they meet)."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.errors import RequestParamsError, TaskConflict
from agent.gateway.handoff import handed_off as handed_off_record
from agent.stores import Stores
from agent.tasks.model import NodeOutput, NodeProgress, Task, TaskStatus
from stores.conftest import ESCAPING_IDS, STALE_AFTER, TTL


def task(task_id: str = "t-1", request: str = "r1", **fields: object) -> Task:
    return Task(task_id=task_id, request_hash=request, progress={"1": NodeProgress(), "2": NodeProgress()},
                **fields)


async def test_saved_task_reads_back_whole(stores: Stores) -> None:
    original = task(outputs={"2": NodeOutput.model_validate({"images": [{"filename": "a.png"}], "text": ["hi"]})})
    original.progress["1"] = NodeProgress(max=20, value=7, start=5, last_updated=9)
    assert await stores.records.claim(original) is None
    assert await stores.records.get("t-1") == original


async def test_unknown_task_is_none(stores: Stores) -> None:
    assert await stores.records.get("never") is None
    assert await stores.records.get_results("never") is None


async def test_results_are_kept_apart_and_come_back(stores: Stores) -> None:
    done = task()
    await stores.records.claim(done)
    done.finish(TaskStatus.SUCCEEDED)
    await stores.records.save(done, {"2": ["iVBORw0KGgo="]})
    assert await stores.records.get_results("t-1") == {"2": ["iVBORw0KGgo="]}
    loaded = await stores.records.get("t-1")
    assert loaded is not None and loaded.status is TaskStatus.SUCCEEDED


async def test_active_id_is_a_conflict(stores: Stores) -> None:
    await stores.records.claim(task())
    with pytest.raises(TaskConflict):
        await stores.records.claim(task())
    running = task(status=TaskStatus.RUNNING)
    await stores.records.save(running)
    with pytest.raises(TaskConflict):
        await stores.records.claim(task(request="other"))


async def test_succeeded_id_answers_the_same_request_and_refuses_another(stores: Stores) -> None:
    first = task()
    await stores.records.claim(first)
    first.finish(TaskStatus.SUCCEEDED)
    await stores.records.save(first, {"2": ["AAAA"]})
    replay = await stores.records.claim(task())
    assert replay is not None and replay.status is TaskStatus.SUCCEEDED
    assert await stores.records.get_results("t-1") == {"2": ["AAAA"]}
    with pytest.raises(TaskConflict, match="different request"):
        await stores.records.claim(task(request="r2"))


@pytest.mark.parametrize("ending", [TaskStatus.FAILED, TaskStatus.CANCELED])
async def test_failed_or_canceled_id_is_free_and_its_leftovers_go(stores: Stores, ending: TaskStatus) -> None:
    first = task()
    await stores.records.claim(first)
    await stores.cancels.request_cancel("t-1")
    first.finish(ending, {"message": "Timeout"})
    await stores.records.save(first, {"2": ["AAAA"]})
    assert await stores.records.claim(task(request="r2")) is None
    loaded = await stores.records.get("t-1")
    assert loaded is not None and loaded.status is TaskStatus.QUEUED and loaded.request_hash == "r2"
    assert await stores.records.get_results("t-1") is None
    assert await stores.cancels.cancels_requested(["t-1"]) == set()


async def test_silent_owner_reads_as_failed_and_frees_the_id(stores: Stores) -> None:
    lost = task(status=TaskStatus.RUNNING, owner="host-1", heartbeat_at=time.time() - STALE_AFTER - 5)
    await stores.records.save(lost)
    seen = await stores.records.get("t-1")
    assert seen is not None and seen.status is TaskStatus.FAILED
    assert seen.error is not None and seen.error["message"] == "InstanceLost" and seen.error["owner"] == "host-1"
    assert await stores.records.claim(task()) is None


async def test_live_owner_keeps_its_task_running(stores: Stores) -> None:
    await stores.records.save(task(status=TaskStatus.RUNNING, heartbeat_at=time.time() - STALE_AFTER + 5))
    seen = await stores.records.get("t-1")
    assert seen is not None and seen.status is TaskStatus.RUNNING


async def test_expired_tasks_are_gone(stores: Stores) -> None:
    old = task("old")
    old.finish(TaskStatus.SUCCEEDED)
    old.finished_at = time.time() - TTL - 1
    await stores.records.save(old, {"1": ["AAAA"]})
    assert await stores.records.get("old") is None
    await stores.records.sweep()
    assert await stores.records.get_results("old") is None
    fresh = task("fresh")
    fresh.finish(TaskStatus.SUCCEEDED)
    fresh.finished_at = time.time() - TTL + 30
    await stores.records.save(fresh, {"1": ["AAAA"]})
    await stores.records.sweep()
    assert await stores.records.get("fresh") is not None
    assert await stores.records.get_results("fresh") == {"1": ["AAAA"]}


@pytest.mark.parametrize("bad", ESCAPING_IDS)
async def test_ids_that_could_escape_are_refused(stores: Stores, bad: str) -> None:
    with pytest.raises(RequestParamsError):
        await stores.records.save(task(bad))
    with pytest.raises(RequestParamsError):
        await stores.records.get(bad)


async def test_concurrent_claims_of_one_new_id_let_one_win(stores: Stores) -> None:
    outcomes = await asyncio.gather(*(stores.records.claim(task("race")) for _ in range(8)), return_exceptions=True)
    winners = [outcome for outcome in outcomes if outcome is None]
    if type(stores.records).__name__ == "FileRecords":
        assert winners, "the file store's claim is not atomic across instances, but one must win"
    else:
        assert len(winners) == 1
        assert all(isinstance(outcome, TaskConflict) for outcome in outcomes if outcome is not None)


async def test_a_new_claim_starts_the_log_afresh(stores: Stores) -> None:
    first = task()
    await stores.records.claim(first)
    await stores.log.append_events("t-1", [("status", {"status": "queued"}), ("status", {"status": "running"})])
    first.finish(TaskStatus.FAILED)
    await stores.records.save(first)
    await stores.records.claim(task(request="retry"))  # a failed task's id is taken again: its old log goes
    assert await stores.log.read_events("t-1", None, 0) == []


def handed_off(task_id: str = "t-1", wait: float = 60.0) -> Task:
    """A task as a gateway records it before FC delivers it."""
    return handed_off_record(task_id, time.time() + wait, owner="gateway-1", request_hash="r1")


async def test_a_handed_off_task_waits_queued_past_the_owners_silence_then_reads_not_delivered(
        stores: Stores) -> None:
    waiting = handed_off(wait=60)
    waiting.heartbeat_at = time.time() - 10 * STALE_AFTER  # no owner heartbeats a task FC holds
    await stores.records.claim(waiting)
    seen = await stores.records.get("t-1")
    assert seen is not None and seen.status is TaskStatus.QUEUED
    lost = handed_off("t-2", wait=-1)
    await stores.records.claim(lost)
    gone = await stores.records.get("t-2")
    assert gone is not None and gone.status is TaskStatus.FAILED
    assert gone.error is not None and gone.error["message"] == "NotDelivered"
    assert gone.finished_at == lost.waits_until


async def test_a_workers_delivery_takes_over_keeping_the_log_and_a_cancel_request(stores: Stores) -> None:
    await stores.records.claim(handed_off())
    await stores.log.append_events("t-1", [("status", {"status": "queued"})])
    await stores.cancels.request_cancel("t-1")
    with pytest.raises(TaskConflict):  # the gateway's own second hand-off of the id
        await stores.records.claim(handed_off())
    assert await stores.records.claim(task()) is None  # the worker's delivery
    assert [event.kind for event in await stores.log.read_events("t-1", None, 0)] == ["status"]
    assert await stores.cancels.cancels_requested(["t-1"]) == {"t-1"}
    with pytest.raises(TaskConflict):  # a second delivery while the first runs
        await stores.records.claim(task())


async def test_a_delivery_of_a_task_canceled_before_it_came_is_answered_as_it_is(stores: Stores) -> None:
    waiting = handed_off()
    await stores.records.claim(waiting)
    waiting.finish(TaskStatus.CANCELED, {"message": "Canceled", "error": "before a worker took it"})
    await stores.records.save(waiting)
    answered = await stores.records.claim(task())
    assert answered is not None and answered.status is TaskStatus.CANCELED
    stored = await stores.records.get("t-1")
    assert stored is not None and stored.status is TaskStatus.CANCELED
