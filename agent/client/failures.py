"""The agent's error bodies as the agent's own exception kinds (agent/errors.py): a caller catches
`ExecutionError` or `Overloaded` as the server raised it, its body's fields on it (`.error`, `.extra`,
`.body()`)."""

from __future__ import annotations

from typing import Any

from agent.errors import AgentError, kind_classes


def error_for(status: int, body: Any) -> AgentError:
    """The exception for an error answer (one that is not the agent's JSON shape becomes `InternalError`)."""
    if not isinstance(body, dict) or not isinstance(body.get("message"), str):
        return AgentError(f"HTTP {status}: {str(body)[:300]}")
    extra = {key: value for key, value in body.items() if key not in ("message", "error")}
    return kind_classes().get(body["message"], AgentError)(body.get("error"), **extra)
