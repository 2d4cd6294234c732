"""An agent with AGENT_TOKEN in front of the in-process double, and keys made through its admin API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent

Client = TestClient[web.Request, web.Application]
TOKEN = "admin-token-for-keys"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def bearer(secret: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **more}


async def make_key(agent: Client, name: str, *, scopes: list[str] | None = None, **limits: Any) -> str:
    """A new key's secret, made by the admin."""
    body: dict[str, Any] = {"name": name, "limits": limits}
    if scopes is not None:
        body["scopes"] = scopes
    response = await agent.post("/api/keys", json=body, headers=ADMIN)
    assert response.status == 201, await response.text()
    secret: str = (await response.json())["key"]
    return secret


@pytest.fixture
async def agent(double: str) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, agent_token=TOKEN, key_cache_seconds=0.2,
                             gpu_second_price=0.5) as client:
        yield client
