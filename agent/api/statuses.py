"""Failures become HTTP here and nowhere else: each kind's status, the headers some of them carry, and the
middleware that answers every failure in the seed's JSON shape, never as aiohttp's text pages or a bare 500."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent.errors import AgentError, MethodNotAllowed, NotFound, RequestParamsError, RequestTooLarge, Unauthorized
from agent.logs import log_event

logger = logging.getLogger("agent.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


STATUS_BY_KIND: dict[str, int] = {
    "RequestParamsError": 400, "InputImageError": 400, "PromptValidationError": 400,
    "WorkflowFormatError": 400, "ModelError": 400,
    "Unauthorized": 401, "Forbidden": 403, "NotFound": 404, "TaskNotFound": 404, "MethodNotAllowed": 405,
    "TaskConflict": 409, "Canceled": 409, "ModelInUse": 409, "KeyConflict": 409, "RequestTooLarge": 413,
    "Overloaded": 429, "LimitExceeded": 429,
    "InternalError": 500, "ExecutionError": 500, "WarmupFailed": 500,
    "ComfyUICrashed": 502, "InstanceLost": 502, "OutputUnavailable": 502, "OutputUploadFailed": 502,
    "ModelFetchFailed": 502,
    "ComfyUIUnavailable": 503, "StoreUnavailable": 503, "WorkerUnavailable": 503, "Timeout": 504,
    "NotDelivered": 504, "ModelStorageFull": 507,
}
RETRY_AFTER_DEFAULT = 5  # a stored 503 or 429 (a task's error read back) says no more


def status_for(body: dict[str, Any]) -> int:
    """HTTP status of an error body (a live failure's or a stored one)."""
    return STATUS_BY_KIND.get(str(body.get("message")), 500)


def retry_headers(status: int, retry_after: int | None = None) -> dict[str, str]:
    """Every 429 and 503 says when to try again."""
    if retry_after is None and status not in (429, 503):
        return {}
    return {"Retry-After": str(RETRY_AFTER_DEFAULT if retry_after is None else retry_after)}


def headers_for(exc: AgentError) -> dict[str, str]:
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="comfyui-agent"'}
    if isinstance(exc, MethodNotAllowed):
        return {"Allow": ", ".join(exc.allowed)}
    return retry_headers(status_for(exc.body()), exc.retry_after)


def error_response(exc: AgentError, extra: dict[str, Any] | None = None,
                   headers: dict[str, str] | None = None) -> web.Response:
    body = {**exc.body(), **(extra or {})}
    return web.json_response(body, status=status_for(body), headers={**headers_for(exc), **(headers or {})})


def _from_http(exc: web.HTTPException, request: web.Request) -> AgentError | None:
    """aiohttp's own refusals (body too large, static files) in the JSON shape; redirects pass as they are."""
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.client_max_size
        return RequestTooLarge(f"the request body is over the limit of {limit} bytes", limit=limit)
    if isinstance(exc, web.HTTPNotFound | web.HTTPForbidden):
        return NotFound(f"nothing at {request.path}")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return MethodNotAllowed(f"{request.method} is not allowed on {request.path}", exc.allowed_methods)
    if isinstance(exc, web.HTTPBadRequest):
        return RequestParamsError(exc.reason)
    return None


Render = Callable[[AgentError], web.Response]


def json_errors(shapes: Mapping[str, Render]) -> Middleware:
    """Every failure as JSON: in the shape of the surface whose path prefix it came under (`shapes`: Comfy API
    v2 has its own envelope), else in the seed's."""

    def render(request: web.Request, exc: AgentError) -> web.Response:
        shape = next((shape for prefix, shape in shapes.items() if request.path.startswith(prefix)), error_response)
        return shape(exc)

    @web.middleware
    async def answered(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except AgentError as exc:
            return render(request, exc)
        except web.HTTPException as exc:
            converted = _from_http(exc, request)
            if converted is None:
                raise
            return render(request, converted)
        except Exception as exc:
            log_event(logger, "request.failed", request.headers.get("task-id"), level=logging.ERROR,
                      path=request.path, error=repr(exc))
            logger.exception("unexpected error")
            return render(request, AgentError("unexpected error in the agent"))

    return answered
