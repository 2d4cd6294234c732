"""The catch-all route: whatever the agent does not answer goes to ComfyUI (see agent/comfy/proxy.py)."""

from __future__ import annotations

from aiohttp import web

from agent.api.services import WorkerServices
from agent.comfy.proxy import ProxyUnreachable, forward_http, forward_websocket
from agent.errors import ComfyUIUnavailable, MethodNotAllowed


async def _agent_methods(request: web.Request) -> set[str]:
    """The methods the agent's own routes take on this path (none: the path is ComfyUI's): asked of the router
    itself, so a route added later is never handed to ComfyUI by mistake."""
    catch_all = request.match_info.route.resource
    methods: set[str] = set()
    for resource in request.app.router.resources():
        if resource is not catch_all:
            methods |= (await resource.resolve(request))[1]
    return methods


async def proxy(request: web.Request, services: WorkerServices) -> web.StreamResponse:
    allowed = await _agent_methods(request)
    if allowed:
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}", allowed)
    base_url, session = services.settings.comfyui_base_url, services.proxy_session
    wants_socket = request.headers.get("Upgrade", "").lower() == "websocket"
    try:
        if wants_socket:
            return await forward_websocket(request, base_url, session)
        return await forward_http(request, base_url, session)
    except ProxyUnreachable as exc:
        retry = 5 if not services.host.ready else 1
        raise ComfyUIUnavailable(f"ComfyUI is not reachable: {exc}", retry_after=retry) from exc
