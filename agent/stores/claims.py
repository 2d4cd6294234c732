"""Who may claim a task id: the rules every store applies inside its own atomic step, as one pure function of the
record found, the record wanted and the time (tests/stores/test_claims.py checks them without a store).

- A task id that is queued or running under a live owner is taken: a new run gets TaskConflict.
- A task id that succeeded answers the same request again with the stored result (a retried delivery runs
  nothing) and refuses a different request with TaskConflict, as FC refuses a reused async task id.
- A task id that failed, was canceled, or whose owner stopped heartbeating is free: the new run replaces it.
- A task id another API key's task holds is taken, whatever its state: a key never replaces nor reads back
  another's task.
- A task waiting outside any instance (`waiting_outside`: a gateway handed it to FC's queue) is taken over by
  the first instance that claims it: its event log and any cancel request made meanwhile stay. One that was
  canceled, or whose wait lapsed (past `waits_until`), answers a late claim as it is: nothing runs.
"""

from __future__ import annotations

from agent.errors import TaskConflict
from agent.tasks.model import Task, TaskStatus


def takes_over(existing: Task | None, new: Task) -> bool:
    """An instance taking a task that waited outside (a worker's delivery of a run a gateway handed off): the
    claim continues the task rather than starting it afresh, so its log and a cancel request made meanwhile are
    kept."""
    return existing is not None and existing.waiting_outside and not new.waiting_outside


def decide_claim(existing: Task | None, new: Task, now: float, stale_after: float) -> Task | None:
    """None to take the id, the task to answer again, or TaskConflict."""
    if existing is None:
        return None
    seen = existing.as_seen(now, stale_after)
    if existing.key != new.key:
        raise TaskConflict(f"task id {existing.task_id} is taken; use a new task id", task_id=existing.task_id)
    if takes_over(existing, new):
        return seen if seen.status.finished else None
    if not seen.status.finished:
        raise TaskConflict(f"task {existing.task_id} is already {existing.status.value}", task_id=existing.task_id)
    if seen.status is TaskStatus.SUCCEEDED:
        if seen.request_hash == new.request_hash:
            return seen
        raise TaskConflict(f"task {existing.task_id} already succeeded with a different request; "
                           "use a new task id", task_id=existing.task_id)
    return None
