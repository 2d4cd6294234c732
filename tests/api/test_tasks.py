"""The task API and local asynchronous runs: 202 + Location, polling, cancel here or from another instance."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from comfy_double.harness import held, start_double
from double_helpers import double_info, save_prompt, wait_double, with_preview
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]


async def poll(agent: Client, task_id: str, statuses: set[str], timeout: float = 20, **params: str) -> dict[str, Any]:
    """The task once its status is one of `statuses`; fails the test if it is not within `timeout` seconds."""
    seen: list[dict[str, Any]] = [{}]

    async def reached() -> dict[str, Any] | None:
        seen[0] = await (await agent.get(f"/api/tasks/{task_id}", params=params)).json()
        return seen[0] if seen[0].get("status") in statuses else None

    try:
        return await until(reached, timeout, f"{task_id} to be {' or '.join(sorted(statuses))}")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {seen[0]}") from None


async def test_prefer_respond_async_answers_202_and_the_run_goes_on(agent: Client) -> None:
    response = await agent.post("/api/run", json=with_preview(save_prompt(0x336699, "async", delay=0.5)),
                                headers={"Prefer": "respond-async", "task-id": "bg-1"})
    assert response.status == 202
    assert response.headers["Location"] == "/api/tasks/bg-1"
    assert response.headers["Preference-Applied"] == "respond-async"
    assert await response.json() == {"task_id": "bg-1", "status_url": "/api/tasks/bg-1"}
    body = await poll(agent, "bg-1", {"succeeded", "failed"}, results="true")
    assert body["status"] == "succeeded"
    assert set(body) == {"task_id", "status", "prompt_id", "created_at", "started_at", "finished_at",
                         "progress", "outputs", "error", "timings", "webhook", "params", "workflow", "models", "key"}
    assert body["workflow"] is None and body["models"] == [] and body["key"] == "anonymous"  # an agent with no token
    assert body["created_at"] <= body["started_at"] <= body["finished_at"]
    timings = body["timings"]
    assert set(timings) == {"claim", "models", "inputs", "queue", "execution", "delivery", "cold_start"}
    assert timings.pop("models") is None  # it names no model by URL
    cold = timings.pop("cold_start")  # the instance's first task: ComfyUI was ready before it ended
    assert cold["agent"] <= cold["comfyui"] and cold["warmup"] is None
    assert all(seconds is not None and seconds >= 0 for seconds in timings.values()), timings
    assert timings["execution"] >= 0.5  # the node's delay
    assert sum(timings.values()) <= body["finished_at"] - body["created_at"] + 0.01
    assert body["outputs"]["2"]["images"][0]["type"] == "output"
    assert body["outputs"]["3"]["images"][0]["type"] == "temp"
    assert base64.b64decode(body["progress"]["2"]["results"][0]).startswith(b"\x89PNG")
    plain = await (await agent.get("/api/tasks/bg-1")).json()
    assert "results" not in plain["progress"]["2"]


async def test_async_query_flag_and_conflict_before_202(agent: Client, double: str) -> None:
    async with held(double):  # the first run cannot end before the second asks under its id
        first = await agent.post("/api/run?async=1", json=save_prompt(1), headers={"task-id": "bg-2"})
        assert first.status == 202
        second = await agent.post("/api/run?async=1", json=save_prompt(2), headers={"task-id": "bg-2"})
        assert second.status == 409
    assert (await poll(agent, "bg-2", {"succeeded"}))["status"] == "succeeded"


async def test_unknown_and_bad_task_ids(agent: Client) -> None:
    assert (await agent.get("/api/tasks/nope")).status == 404
    assert (await agent.post("/api/tasks/nope/cancel")).status == 404
    assert (await agent.get("/api/tasks/a.b")).status == 400


async def test_cancel_a_running_task_here(agent: Client, double: str) -> None:
    run = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, delay=30), headers={"task-id": "stop-1"}))
    await poll(agent, "stop-1", {"running"})
    response = await agent.post("/api/tasks/stop-1/cancel")
    assert response.status == 200
    assert (await response.json())["status"] == "canceled"
    held = await run
    assert held.status == 409 and (await held.json())["message"] == "Canceled"
    info = await double_info(double)
    assert info["running"] is None and not info["pending"]


async def test_cancel_a_task_still_waiting_in_comfyui_queue(agent: Client, double: str) -> None:
    async with held(double):  # the blocking run holds ComfyUI until the block ends
        blocker = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, "block")))
        await wait_double(double, lambda info: info["running"], "the blocking run executing", timeout=EVENTUALLY)
        waiting = await agent.post("/api/run", json=save_prompt(2, "waiting"),
                                   headers={"Prefer": "respond-async", "task-id": "stop-2"})
        assert waiting.status == 202
        await wait_double(double, lambda info: info["pending"], "the second run waiting in the queue",
                          timeout=EVENTUALLY)
        response = await agent.post("/api/tasks/stop-2/cancel")
        assert (await response.json())["status"] == "canceled"
        assert not (await double_info(double))["pending"]
    assert (await blocker).status == 200


async def test_cancel_of_a_finished_task_changes_nothing(agent: Client) -> None:
    await agent.post("/api/run", json=save_prompt(1), headers={"task-id": "done"})
    response = await agent.post("/api/tasks/done/cancel")
    assert response.status == 200 and (await response.json())["status"] == "succeeded"


async def test_cancel_from_another_instance_reaches_the_owner(tmp_path: Path) -> None:
    store = f"file://{tmp_path / 'shared-tasks'}"
    runner_a, double_a = await start_double(tmp_path / "a")
    runner_b, double_b = await start_double(tmp_path / "b")
    try:
        async with running_agent(comfyui_url=double_a, task_store=store) as owner, \
                running_agent(comfyui_url=double_b, task_store=store) as other:
            started = await owner.post("/api/run", json=save_prompt(1, delay=30),
                                       headers={"Prefer": "respond-async", "task-id": "far"})
            assert started.status == 202
            await poll(other, "far", {"running"})
            response = await other.post("/api/tasks/far/cancel")
            body = await response.json()
            assert response.status == 200 and body["status"] == "canceled", body
            assert body["error"]["message"] == "Canceled"
            assert (await double_info(double_a))["running"] is None
            assert (await double_info(double_b))["prompts_received"] == 0
    finally:
        await runner_a.cleanup()
        await runner_b.cleanup()


async def test_long_silent_node_keeps_heartbeating(double: str, tmp_path: Path) -> None:
    folder = tmp_path / "tasks"
    async with running_agent(comfyui_url=double, task_store=f"file://{folder}", task_heartbeat=0.3) as agent:
        run = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, delay=2.5), headers={"task-id": "hb"}))
        await poll(agent, "hb", {"running"}, timeout=5)
        beats = []
        for _ in range(4):
            beats.append(json.loads((folder / "hb.json").read_text())["heartbeat_at"])
            await asyncio.sleep(0.4)  # time passing is what is tested: heartbeats go on while the node is silent
        assert beats == sorted(beats) and beats[-1] - beats[0] >= 0.6
        assert (await (await agent.get("/api/tasks/hb")).json())["status"] == "running"
        assert (await run).status == 200


async def test_a_task_whose_owner_went_silent_reads_as_failed(agent: Client, tmp_path: Path) -> None:
    async with running_agent(comfyui_url="http://127.0.0.1:9", ready=False,
                             task_store=f"file://{tmp_path / 't'}") as reader:
        (tmp_path / "t").mkdir(exist_ok=True)
        (tmp_path / "t" / "ghost.json").write_text(json.dumps({
            "task_id": "ghost", "status": "running", "owner": "gone-host", "heartbeat_at": time.time() - 300,
            "progress": {"1": {"max": 1, "value": 0}}}))
        task = await (await reader.get("/api/tasks/ghost")).json()
        assert task["status"] == "failed"
        assert task["error"]["message"] == "InstanceLost" and task["error"]["owner"] == "gone-host"
        status = await reader.get("/api/status", params={"id": "ghost"})
        assert status.headers["X-Task-Status"] == "failed" and status.headers["X-Task-Error"] == "InstanceLost"
