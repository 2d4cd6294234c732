"""Keys through Comfy's own SDK (`comfy-sdk`): `COMFY_API_KEY` set to an API key, each app sees its own jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from comfy_sdk import AsyncComfy, Forbidden

from agent_harness import running_agent
from double_helpers import save_prompt
from keys.conftest import TOKEN, Client, make_key

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def agent(double: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, agent_token=TOKEN, assets_dir=tmp_path / "assets") as client:
        monkeypatch.setenv("COMFY_BASE_URL", str(client.make_url("")).rstrip("/"))
        yield client


async def test_each_sdk_app_sees_only_its_own_jobs(agent: Client) -> None:
    alice, bob = await make_key(agent, "alice"), await make_key(agent, "bob")
    async with AsyncComfy(api_key=alice, client_info="keys-tests") as as_alice, \
            AsyncComfy(api_key=bob, client_info="keys-tests") as as_bob:
        job = await as_alice.run(as_alice.workflows.from_json(save_prompt(0x336699)))
        assert job.status == "succeeded" and await job.outputs[0].to_bytes()
        theirs = await agent.get(f"/api/v2/jobs/{job.id}", headers={"Authorization": f"Bearer {bob}"})
        assert theirs.status == 404
        assert [summary.id async for summary in as_bob.list_jobs()] == []
        assert [summary.id async for summary in as_alice.list_jobs()] == [job.id]


async def test_a_read_key_submits_no_job_through_the_sdk(agent: Client) -> None:
    reader = await make_key(agent, "reader", scopes=["read"])
    async with AsyncComfy(api_key=reader, client_info="keys-tests") as comfy:
        with pytest.raises(Forbidden):
            await comfy.submit(comfy.workflows.from_json(save_prompt(1)))
        assert [summary.id async for summary in comfy.list_jobs()] == []
