"""Models at the gateway (no GPU): pulled there into the NAS it shares with the workers, offered at once by its
workflows' model pickers, and run by a worker under that name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent_harness import serving
from gateway.test_gateway import AUTH, Deployment, _published, deployment  # noqa: F401 - the fixture
from model_server import ModelServer, safetensors
from waiting import EVENTUALLY, until

pytestmark = pytest.mark.timeout(180)
MODEL = safetensors(1 << 20, seed=6)


async def test_a_model_pulled_at_the_gateway_is_offered_there_and_run_by_a_worker(
        deployment: Deployment, tmp_path: Path) -> None:  # noqa: F811
    nas = tmp_path / "nas-shared"
    await deployment.start_workers(1, env={"NAS_DIR": str(nas)})
    await until(lambda: _published(deployment.store), EVENTUALLY, "a worker to publish ComfyUI's node catalog")
    gateway = deployment.start_gateway(NAS_DIR=str(nas), URL_ALLOW_HOSTS="127.0.0.1")
    session = deployment.session
    files = ModelServer({"sd15.safetensors": MODEL})
    async with serving(files.app()) as url, session.post(f"{gateway}/api/models", headers=AUTH, json={
            "url": f"{url}/m/sd15.safetensors", "folder": "checkpoints"}) as reply:
        body: dict[str, Any] = await reply.json()
        assert reply.status == 200, body
    name = body["pull"]["name"]
    async with session.get(f"{gateway}/api/workflows/txt2img", headers=AUTH) as reply:
        offered = (await reply.json())["parameters"]["properties"]["checkpoint"]["enum"]
    assert name in offered
    async with session.post(f"{gateway}/api/workflows/txt2img/run", headers={**AUTH, "task-id": "gw-model"},
                            json={"params": {"checkpoint": name, "steps": 1}}) as reply:
        assert reply.status == 200, await reply.text()
    task = await deployment.task("gw-model", gateway)
    assert task["status"] == "succeeded" and task["params"]["checkpoint"] == name
