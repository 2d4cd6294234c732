"""The task API: GET /api/tasks/{id} and POST /api/tasks/{id}/cancel, from any instance."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import RUNNER, STORE
from agent.api.render import task_headers, task_view, wants_results
from agent.errors import TaskNotFound
from agent.tasks.model import check_task_id


async def get_task(request: web.Request) -> web.Response:
    task_id = check_task_id(request.match_info["task_id"])
    store = request.app[STORE]
    task = await store.get(task_id)
    if task is None:
        raise TaskNotFound(f"no task {task_id}", task_id=task_id)
    results = await store.get_results(task_id) if task.status.finished and wants_results(request, False) else None
    return web.json_response(task_view(task, results), headers=task_headers(task))


async def cancel_task(request: web.Request) -> web.Response:
    """200 with the task once it ended (canceled, or finished before the cancel took); 202 while it ends."""
    task = await request.app[RUNNER].cancel(check_task_id(request.match_info["task_id"]))
    return web.json_response(task_view(task, None), status=200 if task.status.finished else 202,
                             headers=task_headers(task))
