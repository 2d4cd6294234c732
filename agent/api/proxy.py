"""The catch-all route: whatever the agent does not answer goes to ComfyUI (see agent/comfy/proxy.py)."""

from __future__ import annotations

from aiohttp import web

from agent.api.keys import HOST, PROXY_SESSION, SETTINGS
from agent.comfy.proxy import ProxyUnreachable, forward_http, forward_websocket
from agent.errors import ComfyUIUnavailable, MethodNotAllowed

AGENT_PATHS = frozenset({"/api/run", "/api/status", "/healthz", "/readyz", "/initialize", "/pre-stop", "/app"})
AGENT_PREFIXES = ("/api/tasks/", "/app/")


async def proxy(request: web.Request) -> web.StreamResponse:
    if request.path in AGENT_PATHS or request.path.startswith(AGENT_PREFIXES):
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
    base_url = request.app[SETTINGS].comfyui_base_url
    session = request.app[PROXY_SESSION]
    wants_socket = request.headers.get("Upgrade", "").lower() == "websocket"
    try:
        if wants_socket:
            return await forward_websocket(request, base_url, session)
        return await forward_http(request, base_url, session)
    except ProxyUnreachable as exc:
        retry = 5 if not request.app[HOST].ready else 1
        raise ComfyUIUnavailable(f"ComfyUI is not reachable: {exc}", retry_after=retry) from exc
