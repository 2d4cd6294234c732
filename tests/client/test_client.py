"""The Python client against the agent in front of the double: runs held, in the background and streamed,
outputs saved, each error kind as its exception, 429 retried after its Retry-After, and the sync client."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.client.client import AsyncClient, Client
from agent.client.files import save_outputs
from agent.errors import ExecutionError, RequestParamsError, RunTimeout, TaskNotFound
from agent_harness import running_agent
from double_helpers import save_prompt
from waiting import until

Agent = TestClient[web.Request, web.Application]


def url_of(agent: Agent) -> str:
    return str(agent.make_url("")).rstrip("/")


@pytest.fixture
async def agent(double: str) -> AsyncIterator[Agent]:
    async with running_agent(comfyui_url=double, max_active_runs=1) as client:
        yield client


async def test_a_held_run_and_its_outputs_saved_under_the_task_and_node(agent: Agent, tmp_path: Path,
                                                                         double: str) -> None:
    async with AsyncClient(url_of(agent)) as client:
        progress = await client.run(save_prompt(0x123456, "c"), task_id="cl-1")
        saved = await save_outputs(progress, "cl-1", tmp_path / "out", client.fetch)
    assert [path.name for path in saved] == ["cl-1_2_cl-1_c_00001_.png"]
    assert saved[0].read_bytes() == base64.b64decode(progress["2"]["results"][0])
    assert saved[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_a_background_run_waited_for_and_its_events_streamed(agent: Agent) -> None:
    async with AsyncClient(url_of(agent)) as client:
        accepted = await client.run(save_prompt(1, delay=0.3), task_id="cl-2", background=True)
        assert accepted == {"task_id": "cl-2", "status_url": "/api/tasks/cl-2"}
        kinds = [kind async for kind, _ in client.events("cl-2")]
        task = await client.wait("cl-2")
    assert kinds[0] == "status" and kinds[-1] == "end" and "progress" in kinds
    assert task.status == "succeeded" and task.progress["2"]["results"]


async def test_error_kinds_are_the_agents_own_exceptions(agent: Agent) -> None:
    async with AsyncClient(url_of(agent)) as client:
        with pytest.raises(ExecutionError) as failed:
            await client.run(save_prompt(2, fault="raise"))
        assert failed.value.extra["node_id"] == "1"
        with pytest.raises(TaskNotFound):
            await client.task("never")
        with pytest.raises(RunTimeout):
            await client.run(save_prompt(7, delay=3.0), {"timeout": 0.3})
        with pytest.raises(RequestParamsError) as refused:
            await client.run_workflow("txt2img", {"steps": "many"})
        assert refused.value.extra["parameter"] == "steps"


async def test_a_full_agent_is_tried_again_after_its_retry_after(agent: Agent) -> None:
    async with AsyncClient(url_of(agent)) as client:
        slow = asyncio.ensure_future(client.run(save_prompt(3, delay=1.5)))
        async def full() -> bool:  # the one place taken
            return (await agent.get("/readyz")).status == 503

        await until(full, 10, "the agent to be full")
        second = await client.run(save_prompt(4))  # 429 Overloaded, Retry-After: 1, then 200
        assert second["2"]["images"] and (await slow)["2"]["images"]


async def test_the_sync_client_outside_asyncio(agent: Agent, tmp_path: Path) -> None:
    def flow() -> tuple[str, list[str]]:
        with Client(url_of(agent)) as client:
            accepted = client.run(save_prompt(5), task_id="cl-5", background=True)
            kinds = [kind for kind, _ in client.events(accepted["task_id"])]
            return client.wait("cl-5").status, kinds

    status, kinds = await asyncio.to_thread(flow)
    assert status == "succeeded" and kinds[-1] == "end"


async def test_fc_asynchronous_invocation_headers_name_the_task(agent: Agent) -> None:
    """Sent to FC, FC answers 202 and delivers later; sent to the agent itself, the run is held as FC holds it."""
    async with AsyncClient(url_of(agent)) as client:
        progress = await client.run(save_prompt(6), task_id="fc-7", background="fc")
        assert progress["2"]["images"]
        assert (await client.task("fc-7")).status == "succeeded"
