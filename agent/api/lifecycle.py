"""FC's instance lifecycle hooks: POST /initialize before traffic, GET /pre-stop before the instance goes."""

from __future__ import annotations

import time

from aiohttp import web

from agent.api.replies import Initialized, Stopping
from agent.api.services import WorkerServices


async def initialize(request: web.Request, services: WorkerServices) -> web.Response:
    """Wait until ComfyUI answers, then run the warm-up once (agent/api/warmup.py), both within
    INITIALIZE_TIMEOUT (FC's initializer timeout bounds the whole call); a warm-up that fails is reported (500), so
    FC does not send traffic to an instance that cannot run."""
    started = time.monotonic()
    services.runs.resume()
    warmed = await services.warmup.outcome()
    reply = Initialized(seconds=round(time.monotonic() - started, 3), warmup=warmed)
    return web.json_response(reply.model_dump(exclude_none=True))


async def pre_stop(request: web.Request, services: WorkerServices) -> web.Response:
    """New runs get 503 from now on; open runs get PRESTOP_GRACE seconds to finish."""
    open_runs = await services.runs.drain(services.settings.prestop_grace)
    return web.json_response(Stopping(drained=open_runs == 0, open_runs=open_runs).model_dump())
