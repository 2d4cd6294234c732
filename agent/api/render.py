"""Tasks as callers see them: the `TProgress` map (with padded base64 results) and the task headers."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from agent.api.errors import retry_headers, status_for
from agent.api.replies import TaskView
from agent.tasks.model import Progress, Results, Task

_PROGRESS = TypeAdapter(Progress)


def progress_map(task: Task, results: Results | None) -> dict[str, Any]:
    rendered: dict[str, Any] = _PROGRESS.dump_python(task.progress)
    if results is not None:
        for node, entry in rendered.items():
            if entry["images"]:
                entry["results"] = results.get(node, [])
    return rendered


def progress_response(task: Task, results: Results | None) -> web.Response:
    """Status polls are the hot path: without results the map is serialised in one go, straight to JSON."""
    if results is None:
        return web.Response(body=_PROGRESS.dump_json(task.progress), content_type="application/json",
                            headers=task_headers(task))
    return web.json_response(progress_map(task, results), headers=task_headers(task))


def task_view(task: Task, results: Results | None) -> dict[str, Any]:
    """The contract's `Task`: state, times, the map, every output ComfyUI reported, the error."""
    return TaskView(
        task_id=task.task_id, status=task.status.value, prompt_id=task.prompt_id, created_at=task.created_at,
        started_at=task.started_at, finished_at=task.finished_at, progress=progress_map(task, results),
        outputs={node: output.model_dump(exclude_unset=True) for node, output in task.outputs.items()},
        error=task.error,
    ).model_dump()


def task_headers(task: Task) -> dict[str, str]:
    headers = {"X-Task-Id": task.task_id, "X-Task-Status": task.status.value}
    if task.error:
        headers["X-Task-Error"] = str(task.error.get("message"))
    return headers


def run_response(task: Task, results: Results | None) -> web.Response:
    """200 with the map when the run succeeded; otherwise its error body, with the progress so far."""
    if task.error is None:
        return progress_response(task, results)
    body = {**task.error, "progress": progress_map(task, None)}
    status = status_for(task.error)
    return web.json_response(body, status=status, headers={**task_headers(task), **retry_headers(status)})
