"""Every failure a caller can see, as a kind and the JSON body of the seed's error shape; which HTTP status a kind
becomes is agent/api's business (agent/api/statuses.py), so nothing below the API knows of statuses.

A failed task stores the same body it is answered with, so an error looks identical whether it comes back from
`POST /api/run` on the instance that ran it or from a status poll on another instance.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar


class AgentError(Exception):
    """`{"message": <kind>, "error": <detail>, ...extra}`; `retry_after`: seconds after which trying again may
    work, for the kinds where it can."""

    kind: ClassVar[str] = "InternalError"
    retry_after: int | None = None

    def __init__(self, error: Any, **extra: Any) -> None:
        super().__init__(error if isinstance(error, str) else self.kind)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"message": self.kind, "error": self.error, **self.extra}


class _Retryable(AgentError):
    default_retry_after: ClassVar[int] = 5

    def __init__(self, error: Any, retry_after: int | None = None, **extra: Any) -> None:
        super().__init__(error, **extra)
        self.retry_after = self.default_retry_after if retry_after is None else retry_after


class RequestParamsError(AgentError):
    kind = "RequestParamsError"


class InputImageError(AgentError):
    kind = "InputImageError"


class PromptValidationError(AgentError):
    kind = "PromptValidationError"


class WorkflowFormatError(AgentError):
    """The editor's saved workflow cannot be converted to the API format (`node_id`, `class_type` name where)."""

    kind = "WorkflowFormatError"


class ModelError(AgentError):
    """A model named by URL cannot be used: the reference, the address, the file's size, checksum or kind
    (`node_id`, `input` name where; `reason` says why)."""

    kind = "ModelError"


class ModelFetchFailed(AgentError):
    """The model's host or bucket failed, stalled or broke off: the reference may work later."""

    kind = "ModelFetchFailed"


class ModelInUse(AgentError):
    """A model asked to be deleted that a run on some instance still needs (`folder`, `name`)."""

    kind = "ModelInUse"


class ModelStorageFull(AgentError):
    """The models folder has no room for the model (ENOSPC, or a quota): nothing of it was kept there."""

    kind = "ModelStorageFull"


class TaskNotFound(AgentError):
    kind = "TaskNotFound"


class TaskConflict(AgentError):
    kind = "TaskConflict"


class Canceled(AgentError):
    kind = "Canceled"


class ExecutionError(AgentError):
    kind = "ExecutionError"


class WarmupFailed(AgentError):
    """The warm-up (WARMUP_WORKFLOW) failed or names no workflow: FC must not send traffic to this instance."""

    kind = "WarmupFailed"


class ComfyUICrashed(AgentError):
    kind = "ComfyUICrashed"


class InstanceLost(AgentError):
    """The instance that owned a task stopped heartbeating (killed, or its machine reclaimed)."""

    kind = "InstanceLost"


class NotDelivered(AgentError):
    """A run the gateway handed to FC's asynchronous queue that no worker took before FC's maximum event age
    (`ASYNC_MAX_EVENT_AGE`): FC dropped it, or kept failing to deliver it."""

    kind = "NotDelivered"


class OutputUploadFailed(AgentError):
    """An output could not be put in the output store (`key`, and the store's own words in `store_message`)."""

    kind = "OutputUploadFailed"


class OutputUnavailable(AgentError):
    """ComfyUI reported an output file that it then could not serve."""

    kind = "OutputUnavailable"


class RunTimeout(AgentError):
    kind = "Timeout"


class ComfyUIUnavailable(_Retryable):
    """ComfyUI is starting, restarting or unreachable, or this instance is stopping."""

    kind = "ComfyUIUnavailable"


class WorkerUnavailable(_Retryable):
    """The gateway could not hand a run to the GPU function (`WORKER_URL`): it refused, failed or did not answer."""

    kind = "WorkerUnavailable"


class StoreUnavailable(_Retryable):
    """The shared task store (NAS folder, Redis) cannot be read or written right now."""

    kind = "StoreUnavailable"


class Overloaded(_Retryable):
    """This instance has as many runs as it takes (`MAX_ACTIVE_RUNS`): the agent is full, ComfyUI is fine."""

    kind = "Overloaded"
    default_retry_after = 1


class LimitExceeded(_Retryable):
    """An API key is over one of its limits (`limit` names it: requests_per_minute, concurrent_runs,
    gpu_seconds_per_day, gpu_seconds_per_month); `retry_after` is when it will have room."""

    kind = "LimitExceeded"


class Forbidden(AgentError):
    """The key is known but lacks the scope (`scope`) the request needs."""

    kind = "Forbidden"


class KeyConflict(AgentError):
    """An API key of that name exists (revoked keys' names stay taken: usage rows name them)."""

    kind = "KeyConflict"


# The kinds the HTTP layer raises of its own (agent/api/): here with the rest, so that a client that never
# imports the server (the CLI) knows them too.
class Unauthorized(AgentError):
    kind = "Unauthorized"


class NotFound(AgentError):
    """No such file or example workflow (also aiohttp's own 403 and 404)."""

    kind = "NotFound"


class MethodNotAllowed(AgentError):
    """An agent route asked with another method; `Allow` lists the methods it takes (RFC 9110)."""

    kind = "MethodNotAllowed"

    def __init__(self, error: Any, allowed: Iterable[str] = (), **extra: Any) -> None:
        super().__init__(error, **extra)
        self.allowed = sorted(set(allowed))


class RequestTooLarge(AgentError):
    kind = "RequestTooLarge"


def kind_classes() -> dict[str, type[AgentError]]:
    """Every kind a failure can have, and its class (those of modules imported so far)."""
    found: dict[str, type[AgentError]] = {AgentError.kind: AgentError}
    pending = list(AgentError.__subclasses__())
    while pending:
        cls = pending.pop()
        if "kind" in cls.__dict__:
            found[cls.kind] = cls
        pending.extend(cls.__subclasses__())
    return found


def kinds() -> set[str]:
    return set(kind_classes())

