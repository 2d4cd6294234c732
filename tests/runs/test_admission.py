"""Admission: MAX_ACTIVE_RUNS in flight at most; a held run beyond is refused at once and stores nothing; a run in
the background waits in the agent, holding no connection, and starts when a place frees. The runs that fill the
instance are held in ComfyUI (the double's hold) until the test lets them end: "at once" means while they still
run, on any machine; how fast a refusal comes is bench/burst.py's figure."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from comfy_double.harness import control
from double_helpers import double_info, save_prompt, wait_double
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]
ASYNC = {"Prefer": "respond-async"}


@pytest.fixture
async def small(double: str) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, max_active_runs=2, max_waiting_runs=2) as client:
        yield client


async def run(agent: Client, prompt: dict[str, Any], **headers: str) -> ClientResponse:
    return await agent.post("/api/run", json=prompt, headers=headers)


async def fill(agent: Client, double: str) -> list[asyncio.Task[ClientResponse]]:
    """Two held runs that last until `release`: the instance is full once ComfyUI has both."""
    await control(double, hold=True)
    held = [asyncio.create_task(run(agent, save_prompt(index), **{"task-id": f"slow-{index}"}))
            for index in range(2)]
    await wait_double(double, lambda info: info["prompts_received"] == 2, "both held prompts in ComfyUI",
                      timeout=EVENTUALLY)
    return held


async def release(double: str, held: list[asyncio.Task[ClientResponse]]) -> list[int]:
    """Let the runs that fill the instance end; their statuses."""
    await control(double, hold=False)
    return [(await reply).status for reply in held]


async def status_of(agent: Client, task_id: str) -> str:
    response = await agent.get(f"/api/tasks/{task_id}")
    return str((await response.json())["status"]) if response.status == 200 else str(response.status)


async def test_a_held_run_beyond_the_limit_is_refused_at_once_and_leaves_nothing(small: Client, double: str) -> None:
    held = await fill(small, double)
    refused = await small.post("/api/run", json=save_prompt(7), headers={"task-id": "third"})
    assert not any(reply.done() for reply in held)  # answered while both places were taken: it waited for none
    assert refused.status == 429 and int(refused.headers["Retry-After"]) >= 1
    body = await refused.json()
    assert body["message"] == "Overloaded" and "MAX_ACTIVE_RUNS=2" in body["error"]
    assert await status_of(small, "third") == "404"  # nothing stored
    assert (await double_info(double))["prompts_received"] == 2  # nothing sent
    ready = await small.get("/readyz")
    assert ready.status == 503 and "Retry-After" in ready.headers
    assert await ready.json() == {"status": "full", "restarts": 0, "active_runs": 2, "max_active_runs": 2}
    assert (await small.get("/livez")).status == 200  # busy is not broken: FC must not restart it
    assert await release(double, held) == [200, 200]
    assert (await small.get("/readyz")).status == 200


async def test_background_runs_wait_in_the_agent_without_a_connection_then_run(small: Client, double: str) -> None:
    held = await fill(small, double)
    for index in range(2):
        accepted = await run(small, save_prompt(20 + index), **ASYNC, **{"task-id": f"bg-{index}"})
        assert accepted.status == 202
    assert await status_of(small, "bg-0") == "queued"
    info = await double_info(double)
    assert info["prompts_received"] == 2 and len(info["sockets"]) == 1  # one event connection, nothing else
    beyond = await small.post("/api/run", json=save_prompt(30), headers={**ASYNC, "task-id": "bg-beyond"})
    assert beyond.status == 429 and (await beyond.json())["message"] == "Overloaded"
    assert await release(double, held) == [200, 200]

    async def both_done() -> bool:
        return [await status_of(small, f"bg-{index}") for index in range(2)] == ["succeeded", "succeeded"]

    await until(both_done, EVENTUALLY, "the waiting runs to run once places freed")


async def test_a_waiting_run_canceled_never_reaches_comfyui(small: Client, double: str) -> None:
    held = await fill(small, double)
    assert (await small.post("/api/run", json=save_prompt(40), headers={**ASYNC, "task-id": "bg-x"})).status == 202
    canceled = await small.post("/api/tasks/bg-x/cancel")
    assert canceled.status == 200
    task = await canceled.json()
    assert task["status"] == "canceled" and task["error"]["comfyui_released"] is True
    assert await release(double, held) == [200, 200]
    assert (await double_info(double))["prompts_received"] == 2


async def test_a_burst_never_admits_more_than_the_limit(double: str) -> None:
    async with running_agent(comfyui_url=double, max_active_runs=8, max_waiting_runs=0) as agent:
        await control(double, hold=True)
        burst = [asyncio.create_task(run(agent, save_prompt(100 + index))) for index in range(40)]
        first = [await reply for _, reply in zip(range(32), asyncio.as_completed(burst), strict=False)]
        assert [reply.status for reply in first] == [429] * 32  # answered while the eight admitted are held
        assert all("Retry-After" in reply.headers for reply in first)
        await control(double, hold=False)
        assert sorted(reply.status for reply in await asyncio.gather(*burst)) == [200] * 8 + [429] * 32
        assert (await double_info(double))["prompts_received"] == 8
