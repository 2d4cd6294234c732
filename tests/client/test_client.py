"""The Python client against the agent in front of the double: runs held, in the background and streamed,
outputs saved, each error kind as its exception, 429 retried after its Retry-After, the sync client, and a task
whose instance goes quiet for a while followed to its real end."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.services import WORKER
from agent.client.client import AsyncClient, Client
from agent.client.files import save_outputs
from agent.errors import Canceled, ExecutionError, RequestParamsError, RunTimeout, TaskNotFound
from agent_harness import running_agent
from client.conftest import QuietOwner
from double_helpers import save_prompt
from waiting import EVENTUALLY, until

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
    assert [path.name for path in saved] == ["cl-1_2_c_00001_.png"]  # ComfyUI's cl-1_c_00001_.png, the id once
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
    answered: list[int] = []

    async def seen(response: httpx.Response) -> None:
        answered.append(response.status_code)

    async with AsyncClient(url_of(agent), retries=1000) as client:  # as many as the slot takes to free
        client.http.event_hooks["response"].append(seen)
        slow = asyncio.ensure_future(client.run(save_prompt(3, delay=3600), task_id="cl-slow"))  # until canceled

        async def full() -> bool:  # the one place taken
            return (await agent.get("/readyz")).status == 503

        await until(full, EVENTUALLY, "the agent to be full")
        second = asyncio.ensure_future(client.run(save_prompt(4)))

        async def refused() -> bool:
            return 429 in answered

        await until(refused, EVENTUALLY, "the second run to be answered 429 Overloaded")
        assert (await agent.post("/api/tasks/cl-slow/cancel")).status == 200  # the place frees
        assert (await second)["2"]["images"]
        with pytest.raises(Canceled):
            await slow
    assert answered[-1] == 200 and answered.count(429) >= 1


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


@pytest.mark.usefixtures("quick_lost_ends")
async def test_a_task_whose_instance_went_quiet_is_followed_to_its_real_end(agent: Agent) -> None:
    owner = QuietOwner(agent.app[WORKER].stores, "cl-quiet")
    await owner.went_quiet()
    async with AsyncClient(url_of(agent)) as client:
        events = client.events("cl-quiet")
        assert [(await anext(events))[0] for _ in range(2)] == ["status", "lost"]  # read as lost, not ended
        await owner.heard_again()
        assert (await anext(events))[0] == "progress"  # the stream goes on where it was
        await owner.ended()
        kind, data = await anext(events)
        assert kind == "end" and data["status"] == "succeeded"
        assert [event async for event in events] == []


async def test_waiting_outlasts_a_quiet_instance(agent: Agent) -> None:
    owner = QuietOwner(agent.app[WORKER].stores, "cl-quiet-wait")
    await owner.went_quiet()
    reads: list[str] = []

    async def read(request: httpx.Request) -> None:
        reads.append(request.url.path)

    async with AsyncClient(url_of(agent)) as client:
        client.http.event_hooks["request"].append(read)
        waiting = asyncio.ensure_future(client.wait("cl-quiet-wait"))

        async def read_as_lost_twice() -> bool:
            return reads.count("/api/tasks/cl-quiet-wait") >= 2 or waiting.done()

        await until(read_as_lost_twice, EVENTUALLY, "the client to read the quiet task twice")
        assert not waiting.done()  # a lost read is no end yet
        await owner.heard_again()
        await owner.ended()
        assert (await waiting).status == "succeeded"


@pytest.mark.usefixtures("quick_lost_ends")
async def test_an_instance_quiet_past_the_grace_is_taken_as_lost(agent: Agent) -> None:
    owner = QuietOwner(agent.app[WORKER].stores, "cl-gone")
    await owner.went_quiet()
    async with AsyncClient(url_of(agent), lost_grace=0.5) as client:
        kinds = [(kind, data) async for kind, data in client.events("cl-gone")]
        task = await client.wait("cl-gone")
    assert [kind for kind, _ in kinds] == ["status", "lost", "end"]
    assert kinds[-1][1]["error"]["message"] == "InstanceLost"
    assert task.status == "failed" and task.error is not None and task.error["message"] == "InstanceLost"
