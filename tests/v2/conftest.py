"""Comfy's own SDK (`comfy-sdk`) pointed at an agent in front of the double, as an app switches deployments:
by `COMFY_BASE_URL`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from comfy_sdk import AsyncComfy

from agent_harness import running_agent


@pytest.fixture
async def comfy(double: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[AsyncComfy]:
    async with running_agent(comfyui_url=double, ws_stall_timeout=1.0, assets_dir=tmp_path / "assets") as agent:
        monkeypatch.setenv("COMFY_BASE_URL", str(agent.make_url("")).rstrip("/"))
        monkeypatch.delenv("COMFY_API_KEY", raising=False)
        async with AsyncComfy(client_info="comfyui-agent-tests") as client:
            yield client
