"""Failures in Comfy API v2's envelope, `{"error": {"code", "message", "details"}}`, with the codes `comfy-sdk`
turns into its own exceptions. A kind v2 names has its code and status (a full instance is v2's `queue_full`, a
429 the SDK retries with the same idempotency key; ComfyUI or the worker still starting is
`deployment_not_ready`); any other kind keeps its status and reads as its name in snake case."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from agent.api.statuses import headers_for, retry_headers, status_for
from agent.api.v2.models import Error, ErrorEnvelope
from agent.errors import AgentError

# kind: (code, status); None keeps the agent's status for the kind
CODES: dict[str, tuple[str, int | None]] = {
    "RequestParamsError": ("invalid_request", None), "InputImageError": ("invalid_request", 422),
    "PromptValidationError": ("invalid_workflow", 422),
    "WorkflowFormatError": ("invalid_workflow", 422), "NotFound": ("not_found", None),
    "TaskNotFound": ("not_found", None), "Unauthorized": ("unauthorized", None),
    "Overloaded": ("queue_full", 429), "ComfyUIUnavailable": ("deployment_not_ready", 429),
    "WorkerUnavailable": ("deployment_not_ready", 429), "RequestTooLarge": ("payload_too_large", None),
    "LimitExceeded": ("rate_limited", 429), "Forbidden": ("forbidden", None),
    "ExecutionError": ("node_execution_error", None), "InternalError": ("upstream_error", None),
}


class V2Error(AgentError):
    """A refusal only v2 has (a reused idempotency key, a UI-format graph, an unknown asset): its own code and
    status. It has no kind of the agent's (it inherits the base's): only v2's routes raise it."""

    def __init__(self, code: str, status: int, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.status, self.details = code, status, details


def snake(kind: str) -> str:
    return "".join(f"_{char.lower()}" if char.isupper() else char for char in kind).lstrip("_")


def code_of(kind: str) -> str:
    return CODES.get(kind, (snake(kind), None))[0]


def _details(exc: AgentError) -> dict[str, Any]:
    """The agent's kind, and what the kind adds (ComfyUI's `node_errors` for a refused graph)."""
    details = {"kind": exc.kind, **exc.extra}
    if isinstance(exc.error, dict):
        details.update({key: value for key, value in exc.error.items() if key != "message"})
    return details


def envelope_response(exc: AgentError) -> web.Response:
    if isinstance(exc, V2Error):
        body = ErrorEnvelope(error=Error(code=exc.code, message=exc.args[0], details=exc.details))
        return web.json_response(body.model_dump(), status=exc.status, headers=retry_headers(exc.status))
    code, status = CODES.get(exc.kind, (snake(exc.kind), None))
    if exc.extra.get("limit") == "concurrent_runs":  # v2's bucket that clears as one of the key's runs ends (the
        # others, `rate_limited`, wait for a window to roll: a minute, a day)
        code = "concurrency_limit_exceeded"
    status = status or status_for(exc.body())
    message = exc.error.get("message") if isinstance(exc.error, dict) else exc.error
    body = ErrorEnvelope(error=Error(code=code, message=str(message or exc.kind), details=_details(exc)))
    headers = {**headers_for(exc), **retry_headers(status, exc.retry_after)}
    return web.json_response(body.model_dump(), status=status, headers=headers)
