"""The gateway's run service: a run is recorded `queued` in the shared store, awaiting delivery, before it is
handed to FC's asynchronous queue, so a poll that comes before any GPU instance has started sees it, and a
worker that gets it claims that record (agent/stores/claims.py: it waits outside any instance). FC may deliver it
late, twice or never: a second delivery finds the task claimed or ended, and one never delivered reads as failed
(`NotDelivered`) past its `deliver_by`.

Cancel: a task no worker has taken yet is canceled in the store at once (a delivery that comes later finds it
canceled and runs nothing); one a worker runs gets the store's cancel request, as from any instance.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from agent.errors import AgentError, Canceled, NotDelivered
from agent.gateway.worker import WorkerFunction
from agent.logs import log_event
from agent.metrics import Metrics
from agent.runs.service import CANCEL_WAIT
from agent.stores.cancels import CancelMailbox
from agent.stores.log import EventLog
from agent.stores.records import TaskRecords
from agent.tasks.model import Task, TaskStatus, request_hash, when_long
from agent.tasks.options import RunOptions

logger = logging.getLogger("agent.gateway")

# The key a run handed to a worker belongs to: the worker acts for it when the gateway's token (the admin's)
# carries it, and for no one else (agent/api/security.py).
ON_BEHALF_HEADER = "X-Agent-For-Key"


def handed_off(task_id: str, deliver_by: float, **fields: Any) -> Task:
    """The record of a run in FC's queue: no owner heartbeats it until a worker claims it; past `deliver_by` it
    reads as failed (`NotDelivered`)."""
    task = Task(task_id=task_id, waits_until=deliver_by, **fields)
    waited = round(deliver_by - task.created_at)
    task.lapse = NotDelivered(f"no worker took the run within {waited} s of its hand-off to FC's asynchronous "
                              "queue (ASYNC_MAX_EVENT_AGE): FC dropped it or could not deliver it",
                              deliver_by=deliver_by).body()
    return task


class Handoff:
    def __init__(self, records: TaskRecords, log: EventLog, cancels: CancelMailbox, worker: WorkerFunction,
                 metrics: Metrics, *, max_age: float, instance_id: str) -> None:
        self.records = records
        self.log = log
        self.cancels = cancels
        self.worker = worker
        self.metrics = metrics
        self.max_age = max_age
        self.owner = f"gateway-{instance_id}"

    async def hand_off(self, task_id: str, prompt: dict[str, Any], options: RunOptions, path_qs: str,
                       body: bytes, *, key: str) -> Task:
        """Record the task and hand its run to FC; a task that already succeeded with the same request stays as it
        is, nothing handed off (its caller reads the stored end). Returns the task as recorded."""
        task = handed_off(task_id, time.time() + self.max_age, owner=self.owner, webhook=options.webhook,
                          request_hash=await when_long(request_hash, prompt), params=options.params, key=key)
        if (replay := await self.records.claim(task)) is not None:
            self.metrics.handoffs.labels("replayed").inc()
            return replay
        try:
            await self.log.append_events(task_id, [("status", {"status": task.status.value})])
            request_id = await self.worker.invoke_async(path_qs, body, task_id, {ON_BEHALF_HEADER: key})
        except AgentError as exc:
            await self._refused(task, exc)
            raise
        self.metrics.handoffs.labels("queued").inc()
        log_event(logger, "run.handed_off", task_id, fc_request_id=request_id)
        return task

    async def _refused(self, task: Task, error: AgentError) -> None:
        """FC did not take the run: the record says so (the id is free for another try)."""
        self.metrics.handoffs.labels("refused").inc()
        log_event(logger, "run.handoff_failed", task.task_id, level=logging.WARNING, error=error)
        task.finish(TaskStatus.FAILED, error.body())
        try:
            await self.records.save(task)
        except AgentError as exc:
            log_event(logger, "store.write_failed", task.task_id, level=logging.WARNING, error=exc)

    async def cancel(self, task_id: str) -> Task:
        task = await self.records.find(task_id)
        if task.status.finished:
            return task
        await self.cancels.request_cancel(task_id)  # heard by the worker, should one claim it meanwhile
        if not task.waiting_outside:
            return await self.records.ended_within(task, CANCEL_WAIT)
        task.finish(TaskStatus.CANCELED, Canceled("the run was canceled before a worker took it",
                                                  comfyui_released=True).body())
        await self.records.save(task)
        log_event(logger, "run.canceled_before_delivery", task_id)
        return task
