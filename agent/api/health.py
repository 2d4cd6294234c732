"""Liveness of the agent and readiness of ComfyUI, for FC's health check and for load balancers."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import HOST


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    host = request.app[HOST]
    if host.ready:
        return web.json_response({"status": "ready", "restarts": host.restarts})
    return web.json_response(
        {"message": "ComfyUIUnavailable", "error": "ComfyUI is not answering yet", "restarts": host.restarts},
        status=503, headers={"Retry-After": "5"},
    )
