"""A task as callers see it, wherever they see it: `GET /api/tasks/{id}`, the webhooks' `data`, the event
streams' `end`. The `TProgress` map carries the images' padded base64 only when asked."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter

from agent.tasks.model import Progress, Results, Task

_PROGRESS = TypeAdapter(Progress)


class TaskView(BaseModel):
    """`Task` of the contract: a stored task as callers see it (progress with results when asked)."""

    task_id: str
    status: str
    prompt_id: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    progress: dict[str, Any]
    outputs: dict[str, Any]
    error: dict[str, Any] | None
    timings: dict[str, Any]
    webhook: dict[str, Any] | None = None
    params: dict[str, Any] | None = None
    workflow: str | None = None
    models: list[dict[str, Any]] = []
    key: str | None = None  # the API key that made it


def progress_map(task: Task, results: Results | None) -> dict[str, Any]:
    rendered: dict[str, Any] = _PROGRESS.dump_python(task.progress)
    if results is not None:
        for node, entry in rendered.items():
            if entry["images"]:
                entry["results"] = results.get(node, [])
    return rendered


def progress_json(task: Task) -> bytes:
    """The map without results, serialised in one go: status polls are the hot path."""
    return _PROGRESS.dump_json(task.progress)


def task_view(task: Task, results: Results | None = None) -> dict[str, Any]:
    """The contract's `Task`: state, times, the map, every output ComfyUI reported, the error."""
    return TaskView(
        task_id=task.task_id, status=task.status.value, prompt_id=task.prompt_id, created_at=task.created_at,
        started_at=task.started_at, finished_at=task.finished_at, progress=progress_map(task, results),
        outputs={node: output.model_dump(exclude_unset=True) for node, output in task.outputs.items()},
        error=task.error, timings=task.timings.model_dump(), webhook=_webhook(task), params=task.params,
        workflow=task.workflow, models=[fetch.model_dump(mode="json") for fetch in task.models], key=task.key
    ).model_dump(exclude_none=False)


def _webhook(task: Task) -> dict[str, Any] | None:
    """The delivery record, its URL without the query (where receivers often put a secret)."""
    if task.webhook is None:
        return None
    return {**task.webhook.model_dump(mode="json"), "url": task.webhook.url.split("?", 1)[0]}
