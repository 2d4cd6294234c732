"""GET /api/status: the latest progress of a task, from the shared store, on any instance (a task polled by many
at once is read once per `POLL_FRESH`: agent/api/polls.py)."""

from __future__ import annotations

from aiohttp import web

from agent.api.render import progress_response
from agent.api.requests import query_flag, task_id_of
from agent.api.security import principal_of
from agent.api.services import Services
from agent.errors import RequestParamsError


async def status(request: web.Request, services: Services) -> web.Response:
    task_id = task_id_of(request, query_names=("id", "task_id"))
    if task_id is None:
        raise RequestParamsError("give the task id as ?id=, ?task_id= or the task-id header")
    results = query_flag(request, "results", True)
    polls, reader = services.polls, principal_of(request)
    recent = polls.answer(task_id, results, reader.name)
    if recent is not None:
        return recent
    response = progress_response(*await services.front.read(task_id, reader, results))
    polls.keep(task_id, results, reader.name, response)
    return response
