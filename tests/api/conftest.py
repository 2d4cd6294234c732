"""An agent attached to the in-process double (tests/conftest.py), fresh for every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent


@pytest.fixture
async def agent(double: str) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with running_agent(comfyui_url=double, ws_stall_timeout=1.0) as client:
        yield client
