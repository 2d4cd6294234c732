"""FC's instance lifecycle hooks: POST /initialize before traffic, GET /pre-stop before the instance goes."""

from __future__ import annotations

import json
import re
import time

from aiohttp import web

from agent.api.replies import Initialized, Stopping, Warmup
from agent.api.requests import check_prompt
from agent.api.services import WorkerServices
from agent.errors import ComfyUIUnavailable, WarmupFailed
from agent.tasks.options import RunOptions


def _warmup_id(instance_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"warmup-{instance_id}")[:128]


def _left(budget: float, started: float) -> float:
    """What the readiness wait left of the budget (never zero, which would mean RUN_TIMEOUT's instead)."""
    return max(budget - (time.monotonic() - started), 0.01)


async def initialize(request: web.Request, services: WorkerServices) -> web.Response:
    """Wait until ComfyUI answers, then run the configured warm-up prompt once, both within INITIALIZE_TIMEOUT (FC's
    initializer timeout bounds the whole call); a warm-up that fails is reported (500), so FC does not send traffic
    to an instance that cannot run."""
    settings, runs = services.settings, services.runs
    started = time.monotonic()
    runs.resume()
    if not await services.host.wait_ready(settings.initialize_timeout):
        raise ComfyUIUnavailable(f"ComfyUI did not become ready within {settings.initialize_timeout:g} s")
    warmup = None
    if settings.warmup_prompt is not None:
        prompt = check_prompt(json.loads(settings.warmup_prompt.read_text()))
        run = await runs.submit(_warmup_id(runs.instance_id), prompt,
                                RunOptions(results=False, timeout=_left(settings.initialize_timeout, started)))
        outcome = await run.outcome()
        if outcome.task.error is not None:
            raise WarmupFailed("the warm-up prompt failed", warmup=outcome.task.error)
        warmup = Warmup(task_id=outcome.task.task_id, seconds=round(time.monotonic() - started, 3))
    reply = Initialized(seconds=round(time.monotonic() - started, 3), warmup=warmup)
    return web.json_response(reply.model_dump(exclude_none=True))


async def pre_stop(request: web.Request, services: WorkerServices) -> web.Response:
    """New runs get 503 from now on; open runs get PRESTOP_GRACE seconds to finish."""
    open_runs = await services.runs.drain(services.settings.prestop_grace)
    return web.json_response(Stopping(drained=open_runs == 0, open_runs=open_runs).model_dump())
