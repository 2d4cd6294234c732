"""POST /api/run: hold the request until the run ends (also under FC asynchronous invocation), or, asked
with `Prefer: respond-async` / `?async=1` (local use, without FC), answer 202 at once and run on; asked with
`Accept: text/event-stream`, stream the run's events as it goes (agent/api/events.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agent.api.events import stream_events
from agent.api.keys import BUCKETS, RUNS, SETTINGS, STREAM_SLOTS
from agent.api.render import run_response
from agent.api.replies import Accepted
from agent.api.requests import new_task_id, parse_run_body, task_id_of, wants_async
from agent.errors import AgentError, RequestParamsError
from agent.runs.run import Run, RunOptions
from agent.webhooks.address import check_webhook

Parse = Callable[[bytes], Awaitable[tuple[dict[str, Any], RunOptions]]]


async def _start(request: web.Request, task_id: str, background: bool, parse: Parse) -> tuple[Run, RunOptions]:
    runs = request.app[RUNS]
    runs.check_room(background)  # a full instance says so before it reads the body
    try:
        prompt, options = await parse(await request.read())
        if runs.outputs is None and options.delivery == "url":
            raise RequestParamsError("option output.delivery: `url` needs an output store (OUTPUT_STORE)")
        await check_webhook(options.webhook, request.app[SETTINGS])
    except AgentError as exc:
        await runs.refused(task_id, exc)
        raise
    request.app[BUCKETS].offer(request.headers)
    return await runs.submit(task_id, prompt, options, background=background), options


def accepted(task_id: str) -> web.Response:
    """202: the run goes on; its task is at `Location`."""
    status_url = f"/api/tasks/{task_id}"
    return web.json_response(Accepted(task_id=task_id, status_url=status_url).model_dump(), status=202, headers={
        "Location": status_url, "X-Task-Id": task_id, "Preference-Applied": "respond-async"})


async def run(request: web.Request) -> web.StreamResponse:
    async def parse(raw: bytes) -> tuple[dict[str, Any], RunOptions]:
        return parse_run_body(raw, request)

    return await serve_run(request, parse)


async def serve_run(request: web.Request, parse: Parse) -> web.StreamResponse:
    """A run, held, in the background or streamed, whatever `parse` makes of the body (a graph, a workflow's
    parameters)."""
    task_id = task_id_of(request) or new_task_id()
    if "text/event-stream" in request.headers.get("Accept", ""):
        with request.app[STREAM_SLOTS].taken():  # a full instance refuses before anything runs
            await _start(request, task_id, False, parse)
            return await stream_events(request, task_id, None)
    in_background = wants_async(request)  # every part of the request is checked before the run starts
    started, options = await _start(request, task_id, in_background, parse)
    if in_background:
        return accepted(task_id)
    outcome = await started.outcome()
    response = run_response(outcome.task, outcome.results if options.results else None)
    if outcome.store_error:
        response.headers["X-Task-Store-Error"] = outcome.store_error[:500]
    return response
