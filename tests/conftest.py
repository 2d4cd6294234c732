"""Shared fixtures: the recordings must be there, the double in-process, integration tests gated."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfy_double.harness import start_double
from recordings import PROTOCOL_DIR


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[str]:
    """The test double of ComfyUI in this process, its folders under tmp_path/comfyui; yields its URL."""
    runner, url = await start_double(tmp_path / "comfyui")
    try:
        yield url
    finally:
        await runner.cleanup()


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

