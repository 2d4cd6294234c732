"""Shared fixtures: real recordings, the replaying ComfyUI and the agent in-process."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from recordings import PROTOCOL_DIR


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Integration tests need a real ComfyUI; without COMFYUI_DIR they are skipped, never failed."""
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if comfyui_dir and (Path(comfyui_dir) / "main.py").is_file():
        return
    skip = pytest.mark.skip(reason="COMFYUI_DIR does not point at a ComfyUI checkout")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not PROTOCOL_DIR.is_dir():
        raise pytest.UsageError(f"the ComfyUI recordings are missing: {PROTOCOL_DIR} (set COMFYUI_PROTOCOL_DIR)")
