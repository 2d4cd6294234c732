"""Tasks as callers see them: the `TProgress` map (with padded base64 results) and the task headers."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent.errors import status_for
from agent.tasks.model import Results, Task


def progress_map(task: Task, results: Results | None) -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for node, state in task.progress.items():
        entry = state.model_dump()
        if results is not None and state.images:
            entry["results"] = results.get(node, [])
        rendered[node] = entry
    return rendered


def task_headers(task: Task) -> dict[str, str]:
    headers = {"X-Task-Id": task.task_id, "X-Task-Status": task.status.value}
    if task.error:
        headers["X-Task-Error"] = str(task.error.get("message"))
    return headers


def run_response(task: Task, results: Results | None) -> web.Response:
    """200 with the map when the run succeeded; otherwise its error body, with the progress so far."""
    if task.error is None:
        return web.json_response(progress_map(task, results), headers=task_headers(task))
    body = {**task.error, "progress": progress_map(task, None)}
    return web.json_response(body, status=status_for(task.error), headers=task_headers(task))
