"""The gateway's runs: `POST /api/run` and `POST /api/workflows/{name}/run` checked here as a worker would
(body, task id, parameters, inputs' form and size), so a bad request never wakes a GPU instance, then

- asked in the background (`Prefer: respond-async`, `?async=1`): recorded and handed to the GPU function as an
  FC asynchronous invocation, answered 202 at once;
- asked as an event stream: handed off the same way, and its events streamed from the store by the gateway;
- held (the default): forwarded as a synchronous invocation, the worker's answer streamed back as it comes.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from agent.api.events import stream_events
from agent.api.keys import HANDOFF, LOADERS, SETTINGS, STREAM_SLOTS, WORKER
from agent.api.requests import new_task_id, parse_run_body, task_id_of, wants_async
from agent.api.run import accepted
from agent.api.tasks import canceled
from agent.api.workflows import named, resolve_run
from agent.errors import RequestTooLarge
from agent.gateway.worker import ASYNC_BODY_LIMIT
from agent.runs.run import RunOptions
from agent.tasks.model import check_task_id, when_long
from agent.webhooks.address import check_webhook

# Not passed on: hop-by-hop headers, the caller's credentials for the gateway (the worker gets its own token),
# and what FC sets on each invocation itself.
_DROPPED_REQUEST = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length",
                              "authorization", "cookie", "prefer", "x-fc-invocation-type", "x-fc-async-task-id"})
_DROPPED_REPLY = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"})


async def run(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    prompt, options = parse_run_body(raw, request)
    return await _hand_off(request, prompt, options, raw)


async def run_workflow(request: web.Request) -> web.StreamResponse:
    """Forwarded with the caller's parameters and the seeds drawn here, so the worker makes the same graph (the
    defaults stay the definition's own, for ComfyUI to judge, as on the worker)."""
    definition = named(request)
    graph, options, body = await resolve_run(request, definition, await request.read())
    seeds = {parameter.name for parameter in definition.parameters if parameter.type == "seed"}
    params = {name: value for name, value in (options.params or {}).items() if name in body.params or name in seeds}
    forwarded = json.dumps({"params": params, "options": body.options}, separators=(",", ":")).encode()
    return await _hand_off(request, graph, options, forwarded)


async def cancel_task(request: web.Request) -> web.Response:
    return canceled(request, await request.app[HANDOFF].cancel(check_task_id(request.match_info["task_id"])))


def _path_for_worker(request: web.Request) -> str:
    """The path and query as the worker must get them: never in the background there (FC holds the invocation
    while the worker runs it; a worker answering 202 would be frozen mid-run)."""
    query = {key: value for key, value in request.query.items() if key not in ("async", "token")}
    return str(request.rel_url.with_query(query))


async def _hand_off(request: web.Request, prompt: dict[str, Any], options: RunOptions,
                    body: bytes) -> web.StreamResponse:
    task_id = task_id_of(request) or new_task_id()
    await when_long(request.app[LOADERS].check, prompt)
    await check_webhook(options.webhook, request.app[SETTINGS])
    streamed = "text/event-stream" in request.headers.get("Accept", "")
    if not streamed and not wants_async(request):
        return await _forward_held(request, task_id, body)
    if len(body) > ASYNC_BODY_LIMIT:
        raise RequestTooLarge(f"a run handed off in the background is at most {ASYNC_BODY_LIMIT} bytes (FC's cap "
                              "on an asynchronous invocation); pass input files by URL (http(s), oss://, s3://) "
                              "rather than base64, or hold the request", limit=ASYNC_BODY_LIMIT)
    if not streamed:
        await request.app[HANDOFF].submit(task_id, prompt, options, _path_for_worker(request), body)
        return accepted(task_id)
    with request.app[STREAM_SLOTS].taken():  # a full gateway refuses before anything is handed off
        await request.app[HANDOFF].submit(task_id, prompt, options, _path_for_worker(request), body)
        return await stream_events(request, task_id, None)


async def _forward_held(request: web.Request, task_id: str, body: bytes) -> web.StreamResponse:
    headers = {key: value for key, value in request.headers.items() if key.lower() not in _DROPPED_REQUEST}
    async with request.app[WORKER].invoke(request.method, _path_for_worker(request), {**headers, "task-id": task_id},
                                          body) as reply:
        response = web.StreamResponse(status=reply.status, reason=reply.reason, headers={
            key: value for key, value in reply.headers.items() if key.lower() not in _DROPPED_REPLY})
        await response.prepare(request)
        async for chunk in reply.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response
