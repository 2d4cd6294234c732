"""A task as Comfy API v2 shows it: its job, the job's progress and outputs, a list's summary. Pure functions of
the stored task and the job's entry, so every instance and the gateway answer alike."""

from __future__ import annotations

import base64
import binascii
import json
import time
from datetime import UTC, datetime

from agent.api.v2.errors import code_of
from agent.api.v2.models import Job, JobError, JobStatus, JobSummary, JobUrls, Output, OutputType, Progress
from agent.outputs.delivery import content_type_of
from agent.stores.jobs import JobEntry
from agent.tasks.model import ImageRef, NodeProgress, Task, TaskStatus

OUTPUT_PREFIX = "out_"
URL_LIFE = 24 * 3600  # how long an output's URL is promised to work: it is the agent's, signed anew on each read


def moment(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def job_status(task: Task, canceling: bool = False) -> JobStatus:
    if canceling and not task.status.finished:
        return JobStatus.CANCELING
    return JobStatus(task.status.value)


def output_id(job_id: str, node: str, index: int) -> str:
    raw = json.dumps([job_id, node, index], separators=(",", ":")).encode()
    return OUTPUT_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_output_id(value: str) -> tuple[str, str, int] | None:
    """(job id, node, index) of an output's id, or None when it is not one."""
    if not value.startswith(OUTPUT_PREFIX):
        return None
    encoded = value[len(OUTPUT_PREFIX):]
    try:
        job_id, node, index = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    except (binascii.Error, ValueError, TypeError):
        return None
    if not (isinstance(job_id, str) and isinstance(node, str) and isinstance(index, int)):
        return None
    return job_id, node, index


def node_files(state: NodeProgress) -> list[ImageRef]:
    """A node's outputs in a fixed order: its images, then its other files (an output id counts in this order)."""
    return [*state.images, *state.files]


def type_of_file(file: ImageRef) -> str:
    """The content type the output store recorded, else the one its name says."""
    return file.content_type or content_type_of(file.filename)


def _type_of(content_type: str, in_images: bool) -> OutputType:
    for prefix, kind in (("video/", OutputType.VIDEO), ("audio/", OutputType.AUDIO), ("text/", OutputType.TEXT),
                         ("image/", OutputType.IMAGE)):
        if content_type.startswith(prefix):
            return kind
    return OutputType.IMAGE if in_images else OutputType.FILE


def outputs_of(task: Task, origin: str) -> list[Output]:
    listed = []
    expires = moment(time.time() + URL_LIFE)
    for node, state in task.progress.items():
        for index, ref in enumerate(node_files(state)):
            content_type = type_of_file(ref)
            identity = output_id(task.task_id, node, index)
            listed.append(Output(
                node_id=node, name=ref.filename, type=_type_of(content_type, index < len(state.images)),
                content_type=content_type, size_bytes=ref.bytes or 0, id=identity,
                url=f"{origin}/api/v2/assets/{identity}/content", url_expires_at=expires,
                job_id=task.task_id))
    return listed


def progress_of(task: Task) -> Progress | None:
    """The nodes done of all the graph's, and the node running now with its steps (a sampler's)."""
    if task.status is not TaskStatus.RUNNING:
        return None
    states = task.progress
    done = [node for node, state in states.items() if state.max > 0 and state.value >= state.max]
    running = next((node for node, state in states.items() if state.max > 0 and state.value < state.max), None)
    share = 0.0
    step = steps = None
    if running is not None:
        state = states[running]
        share = state.value / state.max
        if state.max > 1:
            step, steps = state.value, state.max
    total = len(states)
    return Progress(value=min(1.0, (len(done) + share) / total) if total else 0.0, nodes_done=len(done),
                    nodes_total=total, current_node=running, step=step, steps=steps,
                    message=f"node {running} {step}/{steps}" if steps else None)


def error_of(task: Task) -> JobError | None:
    """The task's error in v2's shape: its kind as the code, and the failing node where ComfyUI named one."""
    if task.error is None or task.status is TaskStatus.SUCCEEDED:
        return None
    detail = task.error.get("error")
    node = task.error.get("node_id")
    return JobError(code=code_of(str(task.error.get("message") or "InternalError")),
                    message=_message(detail),
                    node_id=str(node) if node is not None else None,
                    class_type=task.error.get("node_type") if isinstance(task.error.get("node_type"), str) else None,
                    traceback=_traceback(task.error.get("traceback")))


def _message(detail: object) -> str:
    if isinstance(detail, dict) and isinstance(detail.get("message"), str):
        return str(detail["message"])
    return detail if isinstance(detail, str) else json.dumps(detail)[:2000]


def _traceback(value: object) -> str | None:
    if isinstance(value, list):
        return "".join(str(line) for line in value)
    return value if isinstance(value, str) else None


def urls_of(job_id: str, origin: str) -> JobUrls:
    own = f"{origin}/api/v2/jobs/{job_id}"
    return JobUrls(self=own, events=f"{own}/events", cancel=f"{own}/cancel")


def job_of(task: Task, entry: JobEntry | None, origin: str, ttl: float, canceling: bool = False) -> Job:
    return Job(
        id=task.task_id, status=job_status(task, canceling), created_at=moment(task.created_at),
        started_at=moment(task.started_at) if task.started_at else None,
        completed_at=moment(task.finished_at) if task.finished_at else None,
        expires_at=moment(task.lived_until + ttl), queue_position=None, progress=progress_of(task),
        outputs=outputs_of(task, origin), error=error_of(task), urls=urls_of(task.task_id, origin),
        metadata=entry.labels if entry is not None else {})


def summary_of(task: Task, entry: JobEntry) -> JobSummary:
    return JobSummary(id=task.task_id, status=job_status(task), create_time=moment(task.created_at),
                      update_time=moment(task.finished_at or task.heartbeat_at), metadata=entry.labels)
