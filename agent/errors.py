"""Every failure a caller can see, with its HTTP status and the seed's JSON error shape.

A failed task stores the same body it is answered with, so an error looks identical whether it comes back from
`POST /api/run` on the instance that ran it or from a status poll on another instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class AgentError(Exception):
    """Base of the errors in API.md's table: `{"message": <kind>, "error": <detail>, ...extra}`."""

    kind: ClassVar[str] = "InternalError"
    status: ClassVar[int] = 500
    fixed_headers: ClassVar[dict[str, str]] = {}

    def __init__(self, error: Any, **extra: Any) -> None:
        super().__init__(error if isinstance(error, str) else self.kind)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"message": self.kind, "error": self.error, **self.extra}

    def headers(self) -> dict[str, str]:
        return dict(self.fixed_headers)


class RequestParamsError(AgentError):
    kind = "RequestParamsError"
    status = 400


class InputImageError(AgentError):
    kind = "InputImageError"
    status = 400


class PromptValidationError(AgentError):
    kind = "PromptValidationError"
    status = 400


class Unauthorized(AgentError):
    kind = "Unauthorized"
    status = 401
    fixed_headers = {"WWW-Authenticate": 'Bearer realm="comfyui-agent"'}


class NotFound(AgentError):
    """No such file or example workflow (also aiohttp's own 403 and 404 of the static files)."""

    kind = "NotFound"
    status = 404


class TaskNotFound(AgentError):
    kind = "TaskNotFound"
    status = 404


class MethodNotAllowed(AgentError):
    """An agent route asked with another method; `Allow` lists the methods it takes (RFC 9110)."""

    kind = "MethodNotAllowed"
    status = 405

    def __init__(self, error: Any, allowed: Iterable[str], **extra: Any) -> None:
        super().__init__(error, **extra)
        self.allowed = sorted(set(allowed))

    def headers(self) -> dict[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class TaskConflict(AgentError):
    kind = "TaskConflict"
    status = 409


class Canceled(AgentError):
    kind = "Canceled"
    status = 409


class RequestTooLarge(AgentError):
    kind = "RequestTooLarge"
    status = 413


class ExecutionError(AgentError):
    kind = "ExecutionError"
    status = 500


class WarmupFailed(AgentError):
    """The warm-up prompt of POST /initialize failed: FC must not send traffic to this instance."""

    kind = "WarmupFailed"
    status = 500


class ComfyUICrashed(AgentError):
    kind = "ComfyUICrashed"
    status = 502


class InstanceLost(AgentError):
    """The instance that owned a task stopped heartbeating (killed, or its machine reclaimed)."""

    kind = "InstanceLost"
    status = 502


class OutputUnavailable(AgentError):
    """ComfyUI reported an output file that it then could not serve."""

    kind = "OutputUnavailable"
    status = 502


class ComfyUIUnavailable(AgentError):
    kind = "ComfyUIUnavailable"
    status = 503

    def __init__(self, error: Any, retry_after: int = 5, **extra: Any) -> None:
        super().__init__(error, **extra)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StoreUnavailable(AgentError):
    """The shared task store (NAS folder, Redis) cannot be read or written right now."""

    kind = "StoreUnavailable"
    status = 503
    fixed_headers = {"Retry-After": "5"}


class RunTimeout(AgentError):
    kind = "Timeout"
    status = 504


def _all_kinds() -> dict[str, int]:
    found: dict[str, int] = {AgentError.kind: AgentError.status}
    pending = list(AgentError.__subclasses__())
    while pending:
        cls = pending.pop()
        found[cls.kind] = cls.status
        pending.extend(cls.__subclasses__())
    return found


STATUS_BY_KIND: dict[str, int] = _all_kinds()


def status_for(body: dict[str, Any]) -> int:
    """HTTP status of a stored error body."""
    return STATUS_BY_KIND.get(str(body.get("message")), 500)
