"""Liveness of the agent and readiness of ComfyUI, for FC's health check and for load balancers."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import HOST
from agent.api.replies import Alive, Ready
from agent.errors import ComfyUIUnavailable


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(Alive().model_dump())


async def readyz(request: web.Request) -> web.Response:
    host = request.app[HOST]
    if host.ready:
        return web.json_response(Ready(restarts=host.restarts).model_dump())
    raise ComfyUIUnavailable("ComfyUI is not answering yet", restarts=host.restarts)
