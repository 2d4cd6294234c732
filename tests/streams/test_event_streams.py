"""Event streams (Server-Sent Events) on the instance that runs the task and on any other sharing its store:
order, the end, `Last-Event-ID`, previews, a lost owner, and the limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api import streams as streams_module
from agent.stores.file import file_stores
from agent.tasks.model import NodeProgress, Task, TaskStatus
from agent_harness import running_agent
from comfy_double.harness import held, start_double
from double_helpers import save_prompt, with_preview
from recordings import http_calls
from sse_client import Sse, read_events
from stores.conftest import REDIS_URL, clean_redis
from waiting import EVENTUALLY

Client = TestClient[web.Request, web.Application]
STREAM = {"Accept": "text/event-stream"}


def kinds(events: list[Sse]) -> list[str]:
    return [event.event for event in events]


async def stream(agent: Client, task_id: str, **headers: str) -> list[Sse]:
    response = await agent.get(f"/api/tasks/{task_id}/events", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/event-stream"
    return await asyncio.wait_for(read_events(response), EVENTUALLY)


async def test_a_run_streams_its_life_and_the_stream_ends_with_the_task(double: str) -> None:
    async with running_agent(comfyui_url=double) as agent:
        response = await agent.post("/api/run", json=with_preview(save_prompt(0x336699, delay=0.3)),
                                    headers={**STREAM, "task-id": "sse-1"})
        assert response.status == 200 and response.headers["X-Task-Id"] == "sse-1"
        events = await asyncio.wait_for(read_events(response), EVENTUALLY)
    assert kinds(events)[:2] == ["status", "status"] and kinds(events)[-1] == "end"
    assert [event.data["status"] for event in events[:2]] == ["queued", "running"]
    assert {"progress", "output"} <= set(kinds(events))
    assert [int(str(event.id)) for event in events] == list(range(1, len(events) + 1))
    end = events[-1].data
    assert end["task_id"] == "sse-1" and end["status"] == "succeeded" and end["progress"]["2"]["images"]
    outputs = [event.data["node"] for event in events if event.event == "output"]
    assert sorted(outputs) == ["2", "3"]
    finished = [node for event in events if event.event == "progress"
                for node, state in event.data["nodes"].items() if state["value"] == state["max"] == 1]
    assert set(finished) >= {"2", "3"}


async def test_last_event_id_resumes_with_nothing_missed_and_nothing_repeated(double: str) -> None:
    async with running_agent(comfyui_url=double) as agent:
        accepted = await agent.post("/api/run", json=save_prompt(0x10, delay=0.3),
                                    headers={"Prefer": "respond-async", "task-id": "sse-2"})
        assert accepted.status == 202
        first = await agent.get("/api/tasks/sse-2/events")
        head = await asyncio.wait_for(read_events(first, limit=2), EVENTUALLY)
        first.close()  # the client goes away after two events
        rest = await stream(agent, "sse-2", **{"Last-Event-ID": str(head[-1].id)})
        whole = await stream(agent, "sse-2")
    assert [*head, *rest] == whole and kinds(whole)[-1] == "end"


async def test_an_unknown_task_is_a_404_and_a_full_instance_a_429(double: str) -> None:
    async with running_agent(comfyui_url=double, max_event_streams=0) as agent:
        missing = await agent.get("/api/tasks/nope/events")
        assert missing.status == 404 and (await missing.json())["message"] == "TaskNotFound"
        assert (await agent.post("/api/run", json=save_prompt(1), headers={"task-id": "t-x"})).status == 200
        full = await agent.get("/api/tasks/t-x/events")
        assert full.status == 429 and full.headers["Retry-After"] == "5"
        refused = await agent.post("/api/run", json=save_prompt(2), headers={**STREAM, "task-id": "t-y"})
        assert refused.status == 429 and (await agent.get("/api/tasks/t-y")).status == 404  # nothing ran


async def test_previews_arrive_as_small_data_urls(tmp_path: Path) -> None:
    runner, url = await start_double(tmp_path / "comfyui", latent_previews=True)
    prompt: dict[str, Any] = http_calls("sd15_latent_previews_with_metadata_flag", "POST", "/prompt")[0][
        "request_json"]["prompt"]
    try:
        async with running_agent(comfyui_url=url) as agent:
            response = await agent.post("/api/run", json=prompt, headers=STREAM)
            events = await asyncio.wait_for(read_events(response), EVENTUALLY)
    finally:
        await runner.cleanup()
    previews = [event.data for event in events if event.event == "preview"]
    assert previews and all(preview["image"].startswith("data:image/") for preview in previews)
    assert {preview["node"] for preview in previews} == {"3"}  # the sampler's
    assert kinds(events)[-1] == "end" and events[-1].data["status"] == "succeeded"


async def test_a_task_whose_instance_was_lost_ends_from_its_record(double: str, tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    lost = Task(task_id="lost-1", status=TaskStatus.RUNNING, progress={"1": NodeProgress()},
                heartbeat_at=time.time() - 3600)
    stores = file_stores(folder, ttl=86400, stale_after=30)
    await stores.records.save(lost)
    await stores.close()
    async with running_agent(comfyui_url=double, task_store=f"file://{folder}") as agent:
        [end] = await stream(agent, "lost-1")
    assert end.event == "end" and end.id is None
    assert end.data["status"] == "failed" and end.data["error"]["message"] == "InstanceLost"


@pytest.fixture(params=["redis", "file"])
async def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "redis":
        await clean_redis()
        yield REDIS_URL
    else:
        yield f"file://{tmp_path / 'shared-tasks'}"


async def test_a_stream_on_another_instance_sees_the_run_in_order_and_its_end(
        double: str, shared_store: str) -> None:
    async with running_agent(comfyui_url=double, task_store=shared_store) as owner, \
            running_agent(comfyui_url=double, task_store=shared_store) as other:
        accepted = await owner.post("/api/run", json=with_preview(save_prompt(0x20, delay=0.5)),
                                    headers={"Prefer": "respond-async", "task-id": "far-1"})
        assert accepted.status == 202
        there = await stream(other, "far-1")
        here = await stream(owner, "far-1")
        head = await asyncio.wait_for(read_events(await other.get("/api/tasks/far-1/events"), limit=3),
                                      EVENTUALLY)
        rest = await stream(other, "far-1", **{"Last-Event-ID": str(head[-1].id)})
    assert there == here and [*head, *rest] == there
    assert kinds(there)[:2] == ["status", "status"] and kinds(there)[-1] == "end"
    assert there[-1].data["status"] == "succeeded"


async def test_a_quiet_stream_gets_heartbeat_comments(double: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(streams_module, "HEARTBEAT", 0.2)
    monkeypatch.setattr(streams_module, "READ_WAIT", 0.1)
    async with running_agent(comfyui_url=double) as agent:
        async with held(double):  # the run goes quiet in ComfyUI until two heartbeats have come
            response = await agent.post("/api/run", json=save_prompt(0x30), headers=STREAM)
            for _ in range(2):
                await asyncio.wait_for(response.content.readuntil(b"\n: heartbeat\n\n"), EVENTUALLY)
        rest = await asyncio.wait_for(response.read(), EVENTUALLY)
    assert b"event: end\n" in rest and rest.rstrip().endswith(b"}")
