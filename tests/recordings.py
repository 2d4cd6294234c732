"""The real ComfyUI traffic recorded in tests/fixtures/comfyui-0.3.64/, as test data."""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROTOCOL_DIR = Path(os.environ.get("COMFYUI_PROTOCOL_DIR", FIXTURES / "comfyui-0.3.64"))


def recording(name: str) -> dict[str, Any]:
    """A fresh copy each call, so a test that edits what it got cannot change what later tests read."""
    return copy.deepcopy(_parsed(name))


@cache
def _parsed(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PROTOCOL_DIR / f"{name}.json").read_text())
    return data


def server_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame.get("dir") == "server->client"]


def http_calls(name: str, method: str, path_prefix: str) -> list[dict[str, Any]]:
    return [call for call in recording(name)["http"]
            if call["method"] == method and call["path"].startswith(path_prefix)]
