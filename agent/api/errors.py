"""Every failure leaves as the seed's JSON error shape, never as aiohttp's text pages or a bare 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from agent.api.keys import SETTINGS
from agent.errors import AgentError, MethodNotAllowed, NotFound, RequestParamsError, RequestTooLarge
from agent.logs import log_event

logger = logging.getLogger("agent.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(body, status=status, headers=headers)


def _from_http(exc: web.HTTPException, request: web.Request) -> AgentError | None:
    """aiohttp's own refusals (body too large, static files) in the JSON shape; redirects pass as they are."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[SETTINGS].max_body_bytes
        return RequestTooLarge(f"the request body is over the limit of {limit} bytes", limit=limit)
    if isinstance(exc, web.HTTPNotFound | web.HTTPForbidden):
        return NotFound(f"nothing at {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}", exc.allowed_methods)
    if isinstance(exc, web.HTTPBadRequest):
        return RequestParamsError(exc.reason)
    return None


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AgentError as exc:
        return error_response(exc.body(), exc.status, exc.headers())
    except web.HTTPException as exc:
        converted = _from_http(exc, request)
        if converted is None:
            raise
        return error_response(converted.body(), converted.status, converted.headers())
    except Exception as exc:
        log_event(logger, "request.failed", request.headers.get("task-id"), level=logging.ERROR,
                  path=request.path, error=repr(exc))
        logger.exception("unexpected error")
        return error_response({"message": "InternalError", "error": "unexpected error in the agent"}, 500)
