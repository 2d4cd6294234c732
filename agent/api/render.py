"""Tasks as callers see them: the `TProgress` map (with padded base64 results) and the task headers."""

from __future__ import annotations

from aiohttp import web

from agent.api.statuses import retry_headers, status_for
from agent.tasks.model import Results, Task
from agent.tasks.view import progress_json, progress_map


def progress_response(task: Task, results: Results | None) -> web.Response:
    """Status polls are the hot path: without results the map is serialised in one go, straight to JSON."""
    if results is None:
        return web.Response(body=progress_json(task), content_type="application/json",
                            headers=task_headers(task))
    return web.json_response(progress_map(task, results), headers=task_headers(task))


def task_headers(task: Task) -> dict[str, str]:
    headers = {"X-Task-Id": task.task_id, "X-Task-Status": task.status.value}
    if task.error:
        headers["X-Task-Error"] = str(task.error.get("message"))
    stages = [f"{stage};dur={seconds * 1000:.1f}" for stage, seconds in task.timings
              if isinstance(seconds, float | int)]  # the run's own stages (not the instance's cold start)
    if stages:
        headers["Server-Timing"] = ", ".join(stages)  # the standard header: browsers' devtools show it
    return headers


def run_response(task: Task, results: Results | None) -> web.Response:
    """200 with the map when the run succeeded; otherwise its error body, with the progress so far."""
    if task.error is None:
        return progress_response(task, results)
    body = {**task.error, "progress": progress_map(task, None)}
    status = status_for(task.error)
    return web.json_response(body, status=status, headers={**task_headers(task), **retry_headers(status)})
