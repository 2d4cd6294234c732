"""The task API: GET /api/tasks/{id}, from any instance (its cancel is a run route, agent/api/run.py)."""

from __future__ import annotations

from aiohttp import web

from agent.api.render import task_headers
from agent.api.requests import query_flag
from agent.api.security import principal_of
from agent.api.services import Services
from agent.tasks.model import Task, check_task_id
from agent.tasks.view import task_view


async def get_task(request: web.Request, services: Services) -> web.Response:
    task_id = check_task_id(request.match_info["task_id"])
    task, results = await services.front.read(task_id, principal_of(request), query_flag(request, "results", False))
    return web.json_response(task_view(task, results), headers=task_headers(task))


def canceled(services: Services, task: Task) -> web.Response:
    """200 with the task once it ended (canceled, or finished before the cancel took); 202 while it ends."""
    services.polls.forget(task.task_id)
    return web.json_response(task_view(task, None), status=200 if task.status.finished else 202,
                             headers=task_headers(task))
