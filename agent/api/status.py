"""GET /api/status: the latest progress of a task, from the shared store, on any instance."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import STORE
from agent.api.render import progress_response, wants_results
from agent.api.requests import task_id_of
from agent.errors import RequestParamsError, TaskNotFound


async def status(request: web.Request) -> web.Response:
    task_id = task_id_of(request, query_names=("id", "task_id"))
    if task_id is None:
        raise RequestParamsError("give the task id as ?id=, ?task_id= or the task-id header")
    store = request.app[STORE]
    task = await store.get(task_id)
    if task is None:
        raise TaskNotFound(f"no task {task_id}", task_id=task_id)
    results = await store.get_results(task_id) if task.status.finished and wants_results(request, True) else None
    return progress_response(task, results)
