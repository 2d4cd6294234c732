"""GET /api/status: the latest progress of a task, from the shared store, on any instance."""

from __future__ import annotations

from aiohttp import web

from agent.api.render import progress_response
from agent.api.requests import task_id_of
from agent.api.tasks import stored_task
from agent.errors import RequestParamsError


async def status(request: web.Request) -> web.Response:
    task_id = task_id_of(request, query_names=("id", "task_id"))
    if task_id is None:
        raise RequestParamsError("give the task id as ?id=, ?task_id= or the task-id header")
    return progress_response(*await stored_task(request, task_id, results_by_default=True))
