"""Traffic recorded from a real ComfyUI (``tests/fixtures/comfyui-*/``, see ``tests/recordings.py``) and the
normalisation that makes it comparable with live traffic: only volatile values become placeholders
(prompt ids, timestamps, tracebacks, random temp-file parts, file counters, the input directory path), and lists
that ComfyUI builds from Python sets are sorted.
"""

from __future__ import annotations

import json
import re
import struct
from io import BytesIO
from typing import Any, cast

from PIL import Image

from recordings import RECORDED_VERSIONS, recording

# ComfyUI fills these from Python sets: their order changes with the process's hash seed. "errors" are one
# node's validation errors, found by walking a set of input names.
_SET_LIKE = {"executed", "current_outputs", "errors"}
_VOLATILE = {"timestamp": "<timestamp>", "traceback": "<traceback>", "create_time": "<timestamp>",
             "execution_start_time": "<timestamp>", "execution_end_time": "<timestamp>"}
_PATTERNS = [
    (re.compile(r"_temp_[a-z]{5}_"), "_temp_?????_"),
    (re.compile(r"_\d{5}_\.png"), "_#####_.png"),
    (re.compile(r"'[^']*/input/"), "'<input>/"),
]


def load(name: str, version: str = RECORDED_VERSIONS[0]) -> dict[str, Any]:
    """One recorded scenario, e.g. ``load("success_empty_image")``."""
    return recording(name, version)


def normalize(value: Any, ids: dict[str, str] | None = None) -> Any:
    """A copy with volatile values replaced; ``ids`` maps prompt ids (recorded or live) to labels."""
    ids = ids or {}
    if isinstance(value, dict):
        return {ids.get(key, key): _normalize_item(key, item, ids) for key, item in value.items()}
    if isinstance(value, list):
        return [normalize(item, ids) for item in value]
    if isinstance(value, str):
        if value in ids:
            return ids[value]
        for pattern, replacement in _PATTERNS:
            value = pattern.sub(replacement, value)
    return value


def _normalize_item(key: str, item: Any, ids: dict[str, str]) -> Any:
    if key in _VOLATILE:
        return _VOLATILE[key]
    if key in _SET_LIKE and isinstance(item, list):
        return sorted(normalize(item, ids), key=json.dumps)
    return normalize(item, ids)


def recorded_frames(entries: list[dict[str, Any]]) -> list[Any]:
    """The server->client frames of a recorded ``ws[]``: messages, binary frames as ``binary_summary``."""
    frames = []
    for entry in entries:
        if entry.get("dir") != "server->client":
            continue
        if entry["kind"] == "binary":
            summary = {"event_type": entry["event_type"], "image": entry["image_decoded"]}
            frames.append({**summary, "metadata": entry.get("metadata")})
        else:
            frames.append(entry["msg"])
    return frames


def binary_summary(frame: bytes) -> dict[str, Any]:
    """A live binary frame described like the recordings: event type, decoded image, metadata."""
    event_type, second = struct.unpack(">II", frame[:8])
    metadata = None
    image_bytes = frame[8:]
    if event_type == 4:
        metadata = json.loads(frame[8 : 8 + second])
        image_bytes = frame[8 + second :]
    return {"event_type": event_type, "image": decode_image(image_bytes), "metadata": metadata}


def live_frames(frames: list[Any]) -> list[Any]:
    """Live frames (``harness.Frame``) in the form of ``recorded_frames``."""
    return [binary_summary(f.data) if isinstance(f.data, bytes) else f.data for f in frames]


def as_lines(frames: list[Any], ids: dict[str, str]) -> list[str]:
    """Normalised frames as JSON lines: ``1`` and ``1.0`` differ, key order counts, diffs read well."""
    return [json.dumps(normalize(frame, ids)) for frame in frames]


def sent_feature_flags(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The feature_flags the recorded client sent, if any."""
    for entry in entries:
        msg = entry.get("msg") or {}
        if entry.get("dir") == "client->server" and msg.get("type") == "feature_flags":
            return cast("dict[str, Any]", msg["data"])
    return None


def id_labels(*pairs: tuple[str, str]) -> dict[str, str]:
    """Map each (recorded id, live id) pair to one label, ``<prompt 0>``, ``<prompt 1>``..."""
    return {prompt_id: f"<prompt {n}>" for n, pair in enumerate(pairs) for prompt_id in pair}


def _blank_number(item: list[Any]) -> list[Any]:
    """A queue item or history ``prompt``: its number blanked, its outputs to execute (a set) sorted."""
    return ["<number>", *item[1:4], sorted(item[4]), *item[5:]]


def _blank_entry(entry: Any) -> Any:
    if isinstance(entry, dict) and isinstance(entry.get("prompt"), list):
        return {**entry, "prompt": _blank_number(entry["prompt"])}
    return entry


def blank_numbers(body: Any) -> Any:
    """Blank the queue numbers (a per-server counter) in /prompt, /queue and /history replies."""
    if not isinstance(body, dict):
        return body
    if "number" in body and "prompt_id" in body:
        return {**body, "number": "<number>"}
    if "queue_running" in body:
        return {key: [_blank_number(item) for item in items] for key, items in body.items()}
    return {key: _blank_entry(entry) for key, entry in body.items()}


def shape(value: Any) -> Any:
    """Keys and value types only, for replies whose values describe the machine (/system_stats)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    return type(value).__name__


def decode_image(data: bytes) -> dict[str, Any]:
    """Format, size and mode of an encoded image, as the recordings' ``image_decoded``."""
    with Image.open(BytesIO(data)) as image:
        return {"format": image.format, "size": list(image.size), "mode": image.mode}


def exchange_view(exchange: dict[str, Any], ids: dict[str, str]) -> dict[str, Any]:
    """What must match between a recorded and a live HTTP exchange."""
    headers = exchange.get("headers", {})
    body = exchange.get("body")
    if exchange.get("path", "").endswith("/system_stats"):
        body = shape(body)
    return {
        "status": exchange["status"],
        "content_type": headers.get("Content-Type"),
        "disposition": normalize(headers.get("Content-Disposition"), ids),
        "body": normalize(blank_numbers(body), ids),
        "text": exchange.get("body_text") or None,
        "image": exchange.get("image_decoded"),
    }


def exchange_views(
    pairs: list[tuple[dict[str, Any], dict[str, Any]]], ids: dict[str, str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(live views, recorded views) of replayed exchanges, labelled like the recording."""
    def views(side: int) -> list[dict[str, Any]]:
        return [{"label": pair[0].get("label"), **exchange_view(pair[side], ids)} for pair in pairs]

    return views(1), views(0)
