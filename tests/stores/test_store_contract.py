"""The rules every task store follows (agent/tasks/store.py), on memory, file and Redis alike."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.errors import RequestParamsError, TaskConflict
from agent.gateway.handoff import handed_off as handed_off_record
from agent.stores.base import TaskStore
from agent.tasks.model import NodeOutput, NodeProgress, Task, TaskStatus
from stores.conftest import STALE_AFTER, TTL
from waiting import EVENTUALLY


def task(task_id: str = "t-1", request: str = "r1", **fields: object) -> Task:
    return Task(task_id=task_id, request_hash=request, progress={"1": NodeProgress(), "2": NodeProgress()},
                **fields)


async def test_saved_task_reads_back_whole(store: TaskStore) -> None:
    original = task(outputs={"2": NodeOutput.model_validate({"images": [{"filename": "a.png"}], "text": ["hi"]})})
    original.progress["1"] = NodeProgress(max=20, value=7, start=5, last_updated=9)
    assert await store.claim(original) is None
    assert await store.get("t-1") == original


async def test_unknown_task_is_none(store: TaskStore) -> None:
    assert await store.get("never") is None
    assert await store.get_results("never") is None


async def test_results_are_kept_apart_and_come_back(store: TaskStore) -> None:
    done = task()
    await store.claim(done)
    done.finish(TaskStatus.SUCCEEDED)
    await store.save(done, {"2": ["iVBORw0KGgo="]})
    assert await store.get_results("t-1") == {"2": ["iVBORw0KGgo="]}
    loaded = await store.get("t-1")
    assert loaded is not None and loaded.status is TaskStatus.SUCCEEDED


async def test_active_id_is_a_conflict(store: TaskStore) -> None:
    await store.claim(task())
    with pytest.raises(TaskConflict):
        await store.claim(task())
    running = task(status=TaskStatus.RUNNING)
    await store.save(running)
    with pytest.raises(TaskConflict):
        await store.claim(task(request="other"))


async def test_succeeded_id_answers_the_same_request_and_refuses_another(store: TaskStore) -> None:
    first = task()
    await store.claim(first)
    first.finish(TaskStatus.SUCCEEDED)
    await store.save(first, {"2": ["AAAA"]})
    replay = await store.claim(task())
    assert replay is not None and replay.status is TaskStatus.SUCCEEDED
    assert await store.get_results("t-1") == {"2": ["AAAA"]}
    with pytest.raises(TaskConflict, match="different request"):
        await store.claim(task(request="r2"))


@pytest.mark.parametrize("ending", [TaskStatus.FAILED, TaskStatus.CANCELED])
async def test_failed_or_canceled_id_is_free_and_its_leftovers_go(store: TaskStore, ending: TaskStatus) -> None:
    first = task()
    await store.claim(first)
    await store.request_cancel("t-1")
    first.finish(ending, {"message": "Timeout"})
    await store.save(first, {"2": ["AAAA"]})
    assert await store.claim(task(request="r2")) is None
    loaded = await store.get("t-1")
    assert loaded is not None and loaded.status is TaskStatus.QUEUED and loaded.request_hash == "r2"
    assert await store.get_results("t-1") is None
    assert await store.cancels_requested(["t-1"]) == set()


async def test_silent_owner_reads_as_failed_and_frees_the_id(store: TaskStore) -> None:
    lost = task(status=TaskStatus.RUNNING, owner="host-1", heartbeat_at=time.time() - STALE_AFTER - 5)
    await store.save(lost)
    seen = await store.get("t-1")
    assert seen is not None and seen.status is TaskStatus.FAILED
    assert seen.error is not None and seen.error["message"] == "InstanceLost" and seen.error["owner"] == "host-1"
    assert await store.claim(task()) is None


async def test_live_owner_keeps_its_task_running(store: TaskStore) -> None:
    await store.save(task(status=TaskStatus.RUNNING, heartbeat_at=time.time() - STALE_AFTER + 5))
    seen = await store.get("t-1")
    assert seen is not None and seen.status is TaskStatus.RUNNING


async def test_cancel_requests_reach_any_reader(store: TaskStore) -> None:
    await store.claim(task())
    assert await store.cancels_requested(["t-1"]) == set()
    await store.request_cancel("t-1")
    assert await store.cancels_requested(["t-1", "t-2", "never"]) == {"t-1"}


async def test_expired_tasks_are_gone(store: TaskStore) -> None:
    old = task("old")
    old.finish(TaskStatus.SUCCEEDED)
    old.finished_at = time.time() - TTL - 1
    await store.save(old, {"1": ["AAAA"]})
    assert await store.get("old") is None
    await store.sweep()
    assert await store.get_results("old") is None
    fresh = task("fresh")
    fresh.finish(TaskStatus.SUCCEEDED)
    fresh.finished_at = time.time() - TTL + 30
    await store.save(fresh, {"1": ["AAAA"]})
    await store.sweep()
    assert await store.get("fresh") is not None and await store.get_results("fresh") == {"1": ["AAAA"]}


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", "a\0b", "x" * 129, "", "..", "a.json", "é", "a b"])
async def test_ids_that_could_escape_are_refused(store: TaskStore, bad: str) -> None:
    with pytest.raises(RequestParamsError):
        await store.save(task(bad))
    with pytest.raises(RequestParamsError):
        await store.get(bad)
    with pytest.raises(RequestParamsError):
        await store.request_cancel(bad)


async def test_concurrent_claims_of_one_new_id_let_one_win(store: TaskStore) -> None:
    outcomes = await asyncio.gather(*(store.claim(task("race")) for _ in range(8)), return_exceptions=True)
    winners = [outcome for outcome in outcomes if outcome is None]
    if type(store).__name__ == "FileStore":
        assert winners, "the file store's claim is not atomic across instances, but one must win"
    else:
        assert len(winners) == 1
        assert all(isinstance(outcome, TaskConflict) for outcome in outcomes if outcome is not None)


async def test_the_event_log_reads_back_in_order_after_any_id(store: TaskStore) -> None:
    await store.claim(task())
    await store.append_events("t-1", [("status", {"status": "queued"}), ("progress", {"nodes": {"1": {"max": 1}}})])
    await store.append_events("t-1", [("end", {"status": "succeeded"})])
    logged = await store.read_events("t-1", None, 0)
    assert [(entry.kind, entry.data) for entry in logged] == [
        ("status", {"status": "queued"}), ("progress", {"nodes": {"1": {"max": 1}}}), ("end", {"status": "succeeded"})]
    assert len({entry.id for entry in logged}) == 3
    assert [entry.kind for entry in await store.read_events("t-1", logged[0].id, 0)] == ["progress", "end"]
    assert await store.read_events("t-1", logged[-1].id, 0) == []
    assert await store.read_events("other", None, 0) == []


async def test_a_read_waits_for_the_next_entry_and_a_new_claim_starts_afresh(store: TaskStore) -> None:
    first = task()
    await store.claim(first)
    await store.append_events("t-1", [("status", {"status": "queued"})])
    [queued] = await store.read_events("t-1", None, 0)
    waiting = asyncio.ensure_future(store.read_events("t-1", queued.id, EVENTUALLY))
    await asyncio.sleep(0)  # a yield, not a wait: the read starts before the entry comes (it finds it either way)
    await store.append_events("t-1", [("status", {"status": "running"})])
    [running] = await waiting  # bounded by the read's own wait
    assert running.data == {"status": "running"}
    first.finish(TaskStatus.FAILED)
    await store.save(first)
    await store.claim(task(request="retry"))  # a failed task's id is taken again: its old log goes
    assert await store.read_events("t-1", None, 0) == []


def handed_off(task_id: str = "t-1", wait: float = 60.0) -> Task:
    """A task as a gateway records it before FC delivers it."""
    return handed_off_record(task_id, time.time() + wait, owner="gateway-1", request_hash="r1")


async def test_a_handed_off_task_waits_queued_past_the_owners_silence_then_reads_not_delivered(
        store: TaskStore) -> None:
    waiting = handed_off(wait=60)
    waiting.heartbeat_at = time.time() - 10 * STALE_AFTER  # no owner heartbeats a task FC holds
    await store.claim(waiting)
    seen = await store.get("t-1")
    assert seen is not None and seen.status is TaskStatus.QUEUED
    lost = handed_off("t-2", wait=-1)
    await store.claim(lost)
    gone = await store.get("t-2")
    assert gone is not None and gone.status is TaskStatus.FAILED
    assert gone.error is not None and gone.error["message"] == "NotDelivered"
    assert gone.finished_at == lost.waits_until


async def test_a_workers_delivery_takes_over_keeping_the_log_and_a_cancel_request(store: TaskStore) -> None:
    await store.claim(handed_off())
    await store.append_events("t-1", [("status", {"status": "queued"})])
    await store.request_cancel("t-1")
    with pytest.raises(TaskConflict):  # the gateway's own second hand-off of the id
        await store.claim(handed_off())
    assert await store.claim(task()) is None  # the worker's delivery
    assert [event.kind for event in await store.read_events("t-1", None, 0)] == ["status"]
    assert await store.cancels_requested(["t-1"]) == {"t-1"}
    with pytest.raises(TaskConflict):  # a second delivery while the first runs
        await store.claim(task())


async def test_a_delivery_of_a_task_canceled_before_it_came_is_answered_as_it_is(store: TaskStore) -> None:
    waiting = handed_off()
    await store.claim(waiting)
    waiting.finish(TaskStatus.CANCELED, {"message": "Canceled", "error": "before a worker took it"})
    await store.save(waiting)
    answered = await store.claim(task())
    assert answered is not None and answered.status is TaskStatus.CANCELED
    stored = await store.get("t-1")
    assert stored is not None and stored.status is TaskStatus.CANCELED


async def test_a_shared_document_is_kept_whole_and_replaced(store: TaskStore) -> None:
    assert await store.get_shared("input-choices") is None
    await store.put_shared("input-choices", b'{"A": {"b": [1]}}')
    await store.put_shared("input-choices", b'{"A": {"b": [2]}}')
    assert await store.get_shared("input-choices") == b'{"A": {"b": [2]}}'
    with pytest.raises(RequestParamsError):
        await store.put_shared("../escape", b"")
