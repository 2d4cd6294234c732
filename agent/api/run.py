"""The run routes of every app, whichever front it has (agent/front/): `POST /api/run` and
`POST /api/workflows/{name}/run` hold the request until the run ends (also under FC asynchronous invocation);
asked with `Prefer: respond-async` / `?async=1` they answer 202 at once and the run goes on; asked with
`Accept: text/event-stream` they stream the run's events as it goes (agent/api/streams.py).
`POST /api/tasks/{id}/cancel` cancels a run wherever it is."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web
from yarl import URL

from agent.api.render import run_response
from agent.api.replies import Accepted
from agent.api.requests import new_task_id, parse_run_body, task_id_of, wants_async
from agent.api.security import principal_of
from agent.api.services import Services
from agent.api.streams import stream_events
from agent.api.tasks import canceled
from agent.api.workflows import named, resolve_run
from agent.errors import AgentError
from agent.front.base import Front, Held, Mode, Relayed, Submission
from agent.tasks.model import check_task_id
from agent.tasks.options import RunOptions
from agent.workflows.catalog import Catalog, api_format

# What a body makes: the graph, its options, and the body as a worker is to get it.
Parse = Callable[[bytes], Awaitable[tuple[dict[str, Any], RunOptions, bytes]]]


def accepted(task_id: str) -> web.Response:
    """202: the run goes on; its task is at `Location`."""
    status_url = f"/api/tasks/{task_id}"
    return web.json_response(Accepted(task_id=task_id, status_url=status_url).model_dump(), status=202, headers={
        "Location": status_url, "X-Task-Id": task_id, "Preference-Applied": "respond-async"})


def _mode(request: web.Request) -> Mode:
    if "text/event-stream" in request.headers.get("Accept", ""):
        return Mode.STREAMED
    return Mode.BACKGROUND if wants_async(request) else Mode.HELD


async def _submission(request: web.Request, front: Front, task_id: str, mode: Mode, parse: Parse, *,
                      path: str) -> Submission:
    """Every part of the request checked, and its key's limits, before the run starts; a refusal is told to
    the front."""
    front.room(mode)  # a full instance says so before it reads the body
    try:
        prompt, options, body = await parse(await request.read())
        submission = Submission(task_id, prompt, options, mode, body, path, request.headers, principal_of(request))
        await front.admit(submission)
    except AgentError as exc:
        await front.refused(task_id, exc)
        raise
    return submission


@contextlib.asynccontextmanager
async def _withdrawn_on_refusal(front: Front, submission: Submission) -> AsyncIterator[None]:
    """A run refused as it was to start (its id taken, the instance full) frees its key's place."""
    try:
        yield
    except AgentError as exc:
        await front.withdraw(submission, exc)
        raise


async def serve_run(request: web.Request, services: Services, parse: Parse,
                    path: str | None = None) -> web.StreamResponse:
    """A run, held, in the background or streamed, whatever `parse` makes of the body; a worker it is handed to
    gets `path` (the request's own by default)."""
    task_id = task_id_of(request) or new_task_id()
    mode = _mode(request)
    front = services.front
    with services.stream_slots.taken() if mode is Mode.STREAMED else contextlib.nullcontext():
        # a full instance refuses streams first
        submission = await _submission(request, front, task_id, mode, parse, path=path or str(request.rel_url))
        if mode is Mode.HELD:
            async with _withdrawn_on_refusal(front, submission), front.hold(submission) as held:
                return await _answer(request, held, submission.options.results)
        async with _withdrawn_on_refusal(front, submission):
            await front.start(submission)
        if mode is Mode.BACKGROUND:
            return accepted(task_id)
        return await stream_events(request, services.stores, task_id, None)


async def _answer(request: web.Request, held: Held, results: bool) -> web.StreamResponse:
    if isinstance(held, Relayed):
        return await _relay(request, held)
    response = run_response(held.task, held.results if results else None)
    if held.store_error:
        response.headers["X-Task-Store-Error"] = held.store_error[:500]
    return response


async def _relay(request: web.Request, held: Relayed) -> web.StreamResponse:
    response = web.StreamResponse(status=held.status, reason=held.reason, headers=held.headers)
    await response.prepare(request)
    async for chunk in held.body:
        await response.write(chunk)
    await response.write_eof()
    return response


async def converted(prompt: dict[str, Any], options: RunOptions, catalog: Catalog) -> tuple[dict[str, Any],
                                                                                            RunOptions]:
    """The prompt in the API format; one the editor saved is converted and kept for the outputs' metadata (as
    the editor itself sends it, unless the caller sent a workflow for that)."""
    graph = await api_format(prompt, catalog)
    if graph is prompt:
        return graph, options
    return graph, dataclasses.replace(options, pnginfo={"workflow": prompt, **(options.pnginfo or {})})


async def run(request: web.Request, services: Services) -> web.StreamResponse:
    """A worker gets the body as it came: it converts an editor's graph against its own ComfyUI."""
    async def parse(raw: bytes) -> tuple[dict[str, Any], RunOptions, bytes]:
        prompt, options = parse_run_body(raw, request, services.settings.webhook_url)
        return *await converted(prompt, options, services.catalog), raw

    return await serve_run(request, services, parse)


async def run_workflow(request: web.Request, services: Services) -> web.StreamResponse:
    """A worker gets the caller's parameters and the seeds drawn here, so it makes the same graph (the defaults
    stay the definition's own, for ComfyUI to judge), and the version resolved here: one published meanwhile is
    not the one the caller was answered for."""
    definition = await named(request, services.workflows)
    pinned = URL.build(path=f"/api/workflows/{definition.reference}/run", query_string=request.rel_url.query_string)
    seeds = {parameter.name for parameter in definition.parameters if parameter.type == "seed"}

    async def parse(raw: bytes) -> tuple[dict[str, Any], RunOptions, bytes]:
        graph, options, body = await resolve_run(request, services, definition, raw)
        params = {name: value for name, value in (options.params or {}).items()
                  if name in body.params or name in seeds}
        forwarded = json.dumps({"params": params, "options": body.options}, separators=(",", ":")).encode()
        return graph, options, forwarded

    return await serve_run(request, services, parse, str(pinned))


async def cancel_task(request: web.Request, services: Services) -> web.Response:
    task_id = check_task_id(request.match_info["task_id"])
    return canceled(services, await services.front.cancel(task_id, principal_of(request)))
