"""The real ComfyUI traffic recorded in tests/fixtures/comfyui-VERSION/ (0.3.64 and 0.33.0), as test data."""

from __future__ import annotations

import copy
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROTOCOL_DIR = Path(os.environ.get("COMFYUI_PROTOCOL_DIR", FIXTURES / "comfyui-0.3.64"))
RECORDED_VERSIONS = ("0.3.64", "0.33.0")  # oldest first; the first is the default everywhere


def protocol_dir(version: str = RECORDED_VERSIONS[0]) -> Path:
    return PROTOCOL_DIR if version == RECORDED_VERSIONS[0] else FIXTURES / f"comfyui-{version}"


def recorded(name: str) -> list[str]:
    """The versions that have a recording of ``name``."""
    return [version for version in RECORDED_VERSIONS if (protocol_dir(version) / f"{name}.json").is_file()]


def recording(name: str, version: str = RECORDED_VERSIONS[0]) -> dict[str, Any]:
    """A fresh copy each call, so a test that edits what it got cannot change what later tests read."""
    return copy.deepcopy(_parsed(name, version))


@cache
def _parsed(name: str, version: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((protocol_dir(version) / f"{name}.json").read_text())
    return data


def server_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [frame for frame in frames if frame.get("dir") == "server->client"]


def http_calls(name: str, method: str, path_prefix: str) -> list[dict[str, Any]]:
    return [call for call in recording(name)["http"]
            if call["method"] == method and call["path"].startswith(path_prefix)]
