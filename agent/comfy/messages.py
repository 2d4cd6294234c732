"""ComfyUI's websocket messages as typed events, and the ones that matter for a run only.

`status` (a queue broadcast), `progress_state` (a chatty full snapshot) and `feature_flags` carry nothing a run
needs, so they are dropped before JSON parsing: this runs for every frame. Binary frames are previews: with the
metadata feature flag (type 4) they name their prompt and node; without it (type 1) they belong to the node
that is executing, since ComfyUI runs one prompt at a time.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

# ComfyUI serialises with json.dumps defaults, so a frame starts with exactly this text.
_SKIPPED_PREFIXES = tuple(f'{{"type": "{kind}"' for kind in ("status", "progress_state", "feature_flags"))


@dataclass(frozen=True, slots=True)
class ExecutionStarted:
    prompt_id: str


@dataclass(frozen=True, slots=True)
class NodesCached:
    prompt_id: str
    nodes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class NodeExecuting:
    """A node started. `prompt_id` is None in the hint ComfyUI sends to a socket that reconnects mid-run."""

    prompt_id: str | None
    node: str
    display_node: str | None = None


@dataclass(frozen=True, slots=True)
class ProgressReported:
    prompt_id: str | None
    node: str | None
    value: int
    max: int


@dataclass(frozen=True, slots=True)
class NodeExecuted:
    prompt_id: str
    node: str
    display_node: str | None
    output: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ExecutionSucceeded:
    """`outputs`: the output nodes that ran, known only when rebuilt from /history."""

    prompt_id: str
    outputs: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class ExecutionFailed:
    prompt_id: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ExecutionInterrupted:
    prompt_id: str
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptDone:
    """`executing` with node null: the last message ComfyUI sends a client for a prompt."""

    prompt_id: str


@dataclass(frozen=True, slots=True)
class Preview:
    """An image a node showed while it ran (a sampler's latent preview, SaveImageWebsocket's output)."""

    prompt_id: str | None
    node: str | None
    mime: str
    data: bytes


Message = (
    ExecutionStarted
    | NodesCached
    | NodeExecuting
    | ProgressReported
    | NodeExecuted
    | ExecutionSucceeded
    | ExecutionFailed
    | ExecutionInterrupted
    | PromptDone
    | Preview
)


def _executing(data: dict[str, Any]) -> Message | None:
    node = data.get("node")
    prompt_id = data.get("prompt_id")
    if node is None:
        return PromptDone(prompt_id) if isinstance(prompt_id, str) else None
    return NodeExecuting(prompt_id, str(node), _opt_str(data.get("display_node")))


def _progress(data: dict[str, Any]) -> Message | None:
    try:
        value, maximum = int(data["value"]), int(data["max"])
    except (KeyError, TypeError, ValueError):
        return None
    return ProgressReported(data.get("prompt_id"), _opt_str(data.get("node")), value, maximum)


def _executed(data: dict[str, Any]) -> Message | None:
    output = data.get("output")
    if data.get("node") is None or not isinstance(output, dict):
        return None
    return NodeExecuted(data["prompt_id"], str(data["node"]), _opt_str(data.get("display_node")), output)


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _details(data: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key != "prompt_id"}


def event_from(kind: str, data: dict[str, Any]) -> Message | None:
    """Build the event for one message; also used for the messages kept in /history."""
    prompt_id = data.get("prompt_id")
    if kind == "executing":
        return _executing(data)
    if kind == "progress":
        return _progress(data)
    if not isinstance(prompt_id, str):
        return None
    if kind == "execution_start":
        return ExecutionStarted(prompt_id)
    if kind == "execution_cached":
        return NodesCached(prompt_id, tuple(str(node) for node in data.get("nodes") or ()))
    if kind == "executed":
        return _executed(data)
    if kind == "execution_success":
        return ExecutionSucceeded(prompt_id)
    if kind == "execution_error":
        return ExecutionFailed(prompt_id, _details(data))
    if kind == "execution_interrupted":
        return ExecutionInterrupted(prompt_id, _details(data))
    return None


def parse_frame(frame: str | bytes) -> Message | None:
    """The event in one websocket frame, or None for frames no run needs (binary previews included)."""
    if not isinstance(frame, str) or frame.startswith(_SKIPPED_PREFIXES):
        return None
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
        return None
    return event_from(str(message.get("type")), message["data"])


PREVIEW_IMAGE = 1
PREVIEW_IMAGE_WITH_METADATA = 4
_FORMATS = {1: "image/jpeg", 2: "image/png", 3: "image/webp"}


def parse_preview(frame: bytes, executing: tuple[str, str] | None) -> Preview | None:
    """A binary frame as a preview; `executing` (prompt, node) attributes one that carries no metadata."""
    if len(frame) < 8:
        return None
    kind, second = struct.unpack_from(">II", frame)
    if kind == PREVIEW_IMAGE_WITH_METADATA:
        try:
            metadata = json.loads(frame[8:8 + second])
        except ValueError:
            return None
        if not isinstance(metadata, dict):
            return None
        node = metadata.get("display_node_id") or metadata.get("node_id")
        return Preview(_opt_str(metadata.get("prompt_id")), _opt_str(node), str(metadata.get("image_type", "")),
                       frame[8 + second:])
    if kind == PREVIEW_IMAGE:
        prompt_id, node = executing if executing is not None else (None, None)
        return Preview(prompt_id, node, _FORMATS.get(second, "application/octet-stream"), frame[8:])
    return None
