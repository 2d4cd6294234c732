"""A worker's side of a hand-off: FC delivers a run a gateway recorded `queued`. A delivery the worker refuses
before its run began (its body, parameters or options are wrong here) must end that task: FC does not deliver it
again, and the task would read `queued` until FC's event age ran out."""

from __future__ import annotations

import logging

from agent.errors import AgentError
from agent.logs import log_event
from agent.stores.records import TaskRecords
from agent.tasks.model import TaskStatus

logger = logging.getLogger("agent.run")


async def refuse_delivery(records: TaskRecords, task_id: str, error: AgentError) -> None:
    """Fail the handed-off task `task_id` with `error`; a retryable refusal (FC or the caller tries again) and
    any task that is no waiting hand-off are left as they are."""
    if error.retry_after is not None:
        return
    try:
        task = await records.get(task_id)
        if task is None or not task.waiting_outside or task.status.finished:
            return
        task.finish(TaskStatus.FAILED, error.body())
        await records.save(task)
    except AgentError as exc:
        log_event(logger, "store.write_failed", task_id, level=logging.WARNING, error=exc)
        return
    log_event(logger, "run.refused", task_id, error=error)
