"""FC's hooks: POST /initialize waits for ComfyUI and warms it up; GET /pre-stop drains the instance."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.services import WORKER
from agent_harness import running_agent
from agent_process import free_port
from comfy_double.harness import dirs_config
from comfy_double.server import create_app
from double_helpers import double_info, save_prompt, wait_double
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]


async def test_initialize_waits_until_comfyui_answers(tmp_path: Path) -> None:
    port = free_port()
    async with running_agent(comfyui_url=f"http://127.0.0.1:{port}", ready=False) as agent:
        sent_at = time.monotonic()
        initializing = asyncio.create_task(agent.post("/initialize"))
        await asyncio.sleep(1.0)  # the thing tested: a second with no ComfyUI passes and /initialize still waits
        assert not initializing.done()
        runner = web.AppRunner(create_app(dirs_config(tmp_path)))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            response = await asyncio.wait_for(initializing, EVENTUALLY)
            body = await response.json()
            assert response.status == 200 and body["status"] == "ready"
            # the agent counts from when the request reached it, which is after sent_at by an unknown delay
            assert 0 < body["seconds"] <= time.monotonic() - sent_at
            assert (await agent.post("/api/run", json=save_prompt(1))).status == 200
        finally:
            await runner.cleanup()


async def test_the_warmup_gets_only_what_the_wait_for_comfyui_left(tmp_path: Path) -> None:
    """INITIALIZE_TIMEOUT bounds the whole call, as FC's initializer timeout does: a slow first start leaves the
    warm-up less time, not a fresh budget of its own."""
    budget, start_after = 4.0, 2.0
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps(save_prompt(5, "warm")))
    port = free_port()
    async with running_agent(comfyui_url=f"http://127.0.0.1:{port}", ready=False, warmup_workflow=str(warmup),
                             initialize_timeout=budget) as agent:
        sent_at = time.monotonic()
        initializing = asyncio.create_task(agent.post("/initialize"))
        await asyncio.sleep(start_after)  # the thing tested: the first start takes half the budget
        config = dirs_config(tmp_path / "comfyui", node_delay={"EmptyImage": 600.0})
        runner = web.AppRunner(create_app(config))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            response = await asyncio.wait_for(initializing, EVENTUALLY)
            body = await response.json()
            assert response.status == 500 and body["warmup"]["message"] == "Timeout"
            # a fresh budget for the warm-up would have answered after start_after + budget at the earliest
            assert time.monotonic() - sent_at < start_after + budget
        finally:
            await runner.cleanup()


async def test_initialize_gives_up_after_its_timeout() -> None:
    async with running_agent(comfyui_url="http://127.0.0.1:9", ready=False, initialize_timeout=0.5) as agent:
        response = await agent.post("/initialize")
        assert response.status == 503
        assert (await response.json())["message"] == "ComfyUIUnavailable"


async def test_initialize_runs_the_warmup_prompt(double: str, tmp_path: Path) -> None:
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps(save_prompt(5, "warm")))
    async with running_agent(comfyui_url=double, warmup_workflow=str(warmup)) as agent:
        response = await agent.post("/initialize")
        body = await response.json()
        assert response.status == 200 and body["warmup"]["task_id"].startswith("warmup-")
    assert (await double_info(double))["prompts_queued"] == 1


async def test_a_failing_warmup_is_reported(double: str, tmp_path: Path) -> None:
    warmup = tmp_path / "warmup.json"
    warmup.write_text(json.dumps(save_prompt(5, fault="error")))
    async with running_agent(comfyui_url=double, warmup_workflow=str(warmup)) as agent:
        response = await agent.post("/initialize")
        body = await response.json()
        assert response.status == 500
        assert body["message"] == "WarmupFailed" and body["warmup"]["message"] == "ExecutionError"


async def test_pre_stop_refuses_new_runs_and_lets_open_ones_finish(agent: Client, double: str) -> None:
    running = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, delay=1.0)))
    await wait_double(double, lambda info: info["running"], "the open run executing")
    stopping = asyncio.create_task(agent.get("/pre-stop"))

    async def draining() -> bool:
        return agent.app[WORKER].runs.draining

    await until(draining, EVENTUALLY, "/pre-stop to start draining")
    refused = await agent.post("/api/run", json=save_prompt(2))
    assert refused.status == 503 and "stopping" in (await refused.json())["error"]
    assert (await running).status == 200
    body = await (await stopping).json()
    assert body == {"status": "stopping", "drained": True, "open_runs": 0}
    assert (await agent.post("/initialize")).status == 200
    assert (await agent.post("/api/run", json=save_prompt(3))).status == 200


async def test_pre_stop_returns_after_the_grace_period(double: str) -> None:
    async with running_agent(comfyui_url=double, prestop_grace=0.5) as agent:
        running = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, delay=2.0)))
        await wait_double(double, lambda info: info["running"], "the open run executing")
        body = await (await agent.get("/pre-stop")).json()
        assert body == {"status": "stopping", "drained": False, "open_runs": 1}
        assert (await running).status == 200
