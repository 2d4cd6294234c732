"""POST /api/run: hold the request until the run ends (also under FC asynchronous invocation)."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import RUNNER
from agent.api.render import run_response
from agent.api.requests import new_task_id, parse_run_body, task_id_of


async def run(request: web.Request) -> web.Response:
    task_id = task_id_of(request) or new_task_id()
    prompt, options = parse_run_body(await request.read(), dict(request.query))
    outcome = await request.app[RUNNER].run(task_id, prompt, options)
    return run_response(outcome.task, outcome.results)
