"""How the instance is: alive (`/healthz`), working (`/livez`: its ComfyUI answers; FC's health check, which
restarts an instance that fails it, so being busy must not fail it), and able to take more work (`/readyz`: for
load balancers; 503 while ComfyUI starts, while the instance stops, and while it is full)."""

from __future__ import annotations

from aiohttp import web

from agent.api.replies import Alive, Live, NotReady, Ready
from agent.api.services import WorkerServices
from agent.api.statuses import retry_headers
from agent.errors import ComfyUIUnavailable
from agent.runs.service import RETRY_AFTER_FULL, RETRY_AFTER_STARTING, RETRY_AFTER_STOPPING

RETRY_AFTER_NOT_READY = {"starting": RETRY_AFTER_STARTING, "stopping": RETRY_AFTER_STOPPING, "full": RETRY_AFTER_FULL}


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(Alive().model_dump())


async def livez(request: web.Request, services: WorkerServices) -> web.Response:
    host = services.host
    if not host.ready:
        raise ComfyUIUnavailable("ComfyUI is not answering yet", restarts=host.restarts)
    return web.json_response(Live(restarts=host.restarts).model_dump())


async def readyz(request: web.Request, services: WorkerServices) -> web.Response:
    host, runs = services.host, services.runs
    load = {"restarts": host.restarts, "active_runs": runs.active_runs, "max_active_runs": runs.max_active}
    state = "starting" if not host.ready else "stopping" if runs.draining else "full" if runs.full else None
    if state is None:
        return web.json_response(Ready(**load).model_dump())
    return web.json_response(NotReady(status=state, **load).model_dump(), status=503,
                             headers=retry_headers(503, RETRY_AFTER_NOT_READY[state]))
