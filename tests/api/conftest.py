"""An in-process double and an agent attached to it, fresh for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from comfy_double.harness import start_double


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[str]:
    runner, url = await start_double(tmp_path / "comfyui")
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.fixture
async def agent(double: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with running_agent(comfyui_url=double, ws_stall_timeout=1.0) as client:
        yield client
