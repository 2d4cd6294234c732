"""The task API: GET /api/tasks/{id} and POST /api/tasks/{id}/cancel, from any instance."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import POLLS, RUNS, STORES
from agent.api.render import task_headers
from agent.api.requests import query_flag
from agent.tasks.model import Results, Task, check_task_id
from agent.tasks.view import task_view


async def stored_task(request: web.Request, task_id: str, *, results_by_default: bool) -> tuple[Task, Results | None]:
    """The task as the store has it, with its results when it has finished and the caller wants them."""
    records = request.app[STORES].records
    asked = query_flag(request, "results", results_by_default)
    task = await records.find(task_id)
    return task, await records.get_results(task_id) if asked and task.status.finished else None


async def get_task(request: web.Request) -> web.Response:
    task, results = await stored_task(request, check_task_id(request.match_info["task_id"]),
                                      results_by_default=False)
    return web.json_response(task_view(task, results), headers=task_headers(task))


async def cancel_task(request: web.Request) -> web.Response:
    return canceled(request, await request.app[RUNS].cancel(check_task_id(request.match_info["task_id"])))


def canceled(request: web.Request, task: Task) -> web.Response:
    """200 with the task once it ended (canceled, or finished before the cancel took); 202 while it ends."""
    request.app[POLLS].forget(task.task_id)
    return web.json_response(task_view(task, None), status=200 if task.status.finished else 202,
                             headers=task_headers(task))
