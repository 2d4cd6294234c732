"""`GET /api/v2/jobs/{id}/events`: a job's events as v2's Server-Sent Events, on any instance, from the task's
log in the shared store (agent/api/streams.follow, as the agent's own stream reads it).

On connect the job as it is now (`status`, then `progress` while it runs), then what changes; at the end one
`output` per output, then the terminal `status`, after which the stream closes (`comfy-sdk` stops reading at a
terminal status, so the outputs come first). v2 streams are live only: no event ids, no replay, and nothing
already past: of what the log gained since the last look, a status the client was told already, all but the
newest progress, and everything before an end are left out (a short job's log is written in one go at its
end, and each frame costs the client a parse). A comment every 15 s keeps the stream open (the SDK reconnects
after 45 s of silence).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from agent.api.services import Services
from agent.api.streams import Told, follow
from agent.api.v2.errors import V2Error
from agent.api.v2.jobs import find_job, origin
from agent.api.v2.models import JobStatus, Progress, StatusEvent
from agent.api.v2.view import job_status, outputs_of, progress_of
from agent.errors import Overloaded
from agent.logs import log_event
from agent.stores import Stores
from agent.tasks.model import NodeProgress, Task, TaskStatus

logger = logging.getLogger("agent.api")


def _frame(kind: str, data: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _ending(task: Task | None, where: str) -> bytes:
    """The outputs, then the terminal status (an expired task reads `expired`)."""
    if task is None:
        return _frame("status", StatusEvent(status=JobStatus.EXPIRED).model_dump())
    outputs = b"".join(_frame("output", output.model_dump(mode="json")) for output in outputs_of(task, where))
    return outputs + _frame("status", StatusEvent(status=job_status(task)).model_dump())


def _preview(data: dict[str, Any]) -> dict[str, Any] | None:
    """The log's data URL as v2's preview."""
    head, _, encoded = str(data.get("image", "")).partition(";base64,")
    if not head.startswith("data:") or not encoded:
        return None
    return {"node_id": str(data.get("node") or ""), "content_type": head[len("data:"):], "data_base64": encoded}


async def _now(stores: Stores, job_id: str) -> tuple[str | None, Task | None, bool]:
    """Where the log is now, the task, and whether the log already holds the end."""
    entries = await stores.log.read_events(job_id, None, 0)
    task = await stores.records.get(job_id)
    return (entries[-1].id if entries else None), task, any(entry.kind == "end" for entry in entries)


def _ended(data: dict[str, Any]) -> Task | None:
    """The task an end entry carries (the store's record, as it was written before the end); None when gone."""
    return Task.model_validate(data) if "status" in data else None


class _ClientView:
    """What this stream has told its client of a running job: a frame goes out only when it says something new."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.status: JobStatus | None = None
        self.progress: Progress | None = None

    def changes(self) -> bytes:
        """The job's status and progress, where they differ from what was told."""
        frames = b""
        if (status := job_status(self.task)) != self.status:
            self.status = status
            frames += _frame("status", StatusEvent(status=status).model_dump())
        if (progress := progress_of(self.task)) is not None and progress != self.progress:
            self.progress = progress
            frames += _frame("progress", progress.model_dump())
        return frames

    def batch(self, batch: list[Told], where: str) -> bytes:
        """What the log gained, as frames: only the end when it is there (the rest is past)."""
        if batch[-1].kind == "end":
            return _ending(_ended(batch[-1].data), where)
        frames = b""
        for told in batch:
            if told.kind == "heartbeat":
                frames += b": keepalive\n\n"
            elif told.kind == "status":
                self.task.status = TaskStatus(told.data["status"])
                frames += self.changes()
            elif told.kind == "progress":
                for node, state in told.data.get("nodes", {}).items():
                    self.task.progress[node] = NodeProgress.model_validate(state)
            elif told.kind == "preview" and (preview := _preview(told.data)) is not None:
                frames += _frame("preview", preview)
        return frames + self.changes()


async def _stream(response: web.StreamResponse, stores: Stores, job_id: str, where: str) -> None:
    after, task, ended = await _now(stores, job_id)
    if task is None or ended or task.status.finished:
        await response.write_eof(_ending(task, where))  # with the stream's end: one send, not two
        return
    view = _ClientView(task)
    await response.write(view.changes())
    async for batch in follow(stores, job_id, after):
        frames = view.batch(batch, where)
        if batch[-1].kind == "end":
            await response.write_eof(frames)
        elif frames:
            await response.write(frames)


async def job_events(request: web.Request, services: Services) -> web.StreamResponse:
    task, _ = await find_job(request, services, request.match_info["job_id"])
    try:
        with services.stream_slots.taken():
            return await _serve(request, services.stores, task.task_id)
    except Overloaded as exc:  # only the slot refuses so: a stream that began never raises it
        raise V2Error("too_many_streams", 429, str(exc)) from None


async def _serve(request: web.Request, stores: Stores, job_id: str) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no"})
    await response.prepare(request)
    try:
        await _stream(response, stores, job_id, origin(request))
    except ConnectionResetError:
        log_event(logger, "stream.closed", job_id, level=logging.DEBUG, by="client")
    return response
