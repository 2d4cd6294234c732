"""The claim rules alone, as a function of the record found, the record wanted and the time: no store, no I/O
(tests/stores/test_records_contract.py checks that every store applies them atomically)."""

from __future__ import annotations

import pytest

from agent.errors import TaskConflict
from agent.gateway.handoff import handed_off
from agent.stores.claims import decide_claim, takes_over
from agent.tasks.model import Task, TaskStatus

NOW, STALE_AFTER = 1_000_000.0, 30.0


def task(status: TaskStatus = TaskStatus.RUNNING, request: str = "r1", **fields: object) -> Task:
    values: dict[str, object] = {"created_at": NOW - 100, "heartbeat_at": NOW - 1, **fields}
    return Task(task_id="t-1", status=status, request_hash=request, **values)


def waiting(status: TaskStatus, deliver_by: float, **fields: object) -> Task:
    """A task as a gateway records it before FC delivers it."""
    return handed_off("t-1", deliver_by, status=status, request_hash="r1", created_at=NOW - 100,
                      heartbeat_at=NOW - 1, **fields)


def claim(existing: Task | None, new: Task) -> Task | None:
    return decide_claim(existing, new, NOW, STALE_AFTER)


def test_a_free_id_is_taken() -> None:
    assert claim(None, task(TaskStatus.QUEUED)) is None


@pytest.mark.parametrize("status", [TaskStatus.QUEUED, TaskStatus.RUNNING])
def test_an_unfinished_task_of_a_live_owner_is_refused(status: TaskStatus) -> None:
    with pytest.raises(TaskConflict, match=f"already {status.value}"):
        claim(task(status), task(TaskStatus.QUEUED))


def test_a_task_whose_owner_went_silent_is_replaced() -> None:
    assert claim(task(heartbeat_at=NOW - STALE_AFTER - 1), task(TaskStatus.QUEUED)) is None


def test_a_success_answers_the_same_request_again_and_refuses_another() -> None:
    done = task(TaskStatus.SUCCEEDED, finished_at=NOW - 5)
    assert claim(done, task(TaskStatus.QUEUED)) == done
    with pytest.raises(TaskConflict, match="different request"):
        claim(done, task(TaskStatus.QUEUED, request="r2"))


@pytest.mark.parametrize("status", [TaskStatus.FAILED, TaskStatus.CANCELED])
def test_a_failed_or_canceled_task_is_replaced(status: TaskStatus) -> None:
    assert claim(task(status, finished_at=NOW - 5), task(TaskStatus.QUEUED)) is None


def test_a_worker_takes_over_a_handed_off_task_while_fc_still_delivers_it() -> None:
    handed = waiting(TaskStatus.QUEUED, NOW + 60)
    delivery = task(TaskStatus.QUEUED)
    assert takes_over(handed, delivery) and not takes_over(handed, waiting(TaskStatus.QUEUED, NOW + 60))
    assert claim(handed, delivery) is None


def test_a_late_or_canceled_hand_off_answers_the_delivery_as_it_is() -> None:
    late = claim(waiting(TaskStatus.QUEUED, NOW - 1), task(TaskStatus.QUEUED))
    assert late is not None and late.status is TaskStatus.FAILED and late.error is not None
    assert late.error["message"] == "NotDelivered"
    canceled = waiting(TaskStatus.CANCELED, NOW + 60, finished_at=NOW - 1)
    assert claim(canceled, task(TaskStatus.QUEUED)) == canceled


def test_a_second_hand_off_of_a_queued_id_is_refused() -> None:
    with pytest.raises(TaskConflict):
        claim(waiting(TaskStatus.QUEUED, NOW + 60), waiting(TaskStatus.QUEUED, NOW + 60))
