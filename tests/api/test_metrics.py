"""GET /metrics: Prometheus's text format as prometheus-client itself parses it, counting the runs made here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent_harness import running_agent, scrape, serving
from agent_process import free_port
from double_helpers import save_prompt
from files_server import FilesServer


@pytest.fixture
async def files() -> AsyncIterator[str]:
    async with serving(FilesServer().app()) as url:
        yield url


async def test_counters_match_the_runs_made(double: str, files: str) -> None:
    loaded: dict[str, Any] = {"1": {"class_type": "LoadImage", "inputs": {"image": f"{files}/png/1/2/3"}},
                              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "m"}}}
    async with running_agent(comfyui_url=double, url_allow_hosts=frozenset({"127.0.0.1"})) as agent:
        before = await scrape(agent)
        assert before[("comfyui_agent_comfyui_ready", ())] == 1
        assert before[("comfyui_agent_comfyui_restarts_total", ())] == 0
        assert before[("comfyui_agent_runs_in_flight", ())] == 0
        for color in (1, 2):
            assert (await agent.post("/api/run", json=save_prompt(color))).status == 200
        assert (await agent.post("/api/run", json=save_prompt(3, fault="raise"))).status == 500
        assert (await agent.post("/api/run", json=loaded)).status == 200
        assert (await agent.post("/api/run", json={"1": {"class_type": "Nope", "inputs": {}}})).status == 400
        after = await scrape(agent)
    runs = {labels: value for (name, labels), value in after.items() if name == "comfyui_agent_runs_total"}
    assert runs == {(("kind", ""), ("status", "succeeded")): 3,
                    (("kind", "ExecutionError"), ("status", "failed")): 1,
                    (("kind", "PromptValidationError"), ("status", "failed")): 1}
    assert after[("comfyui_agent_run_duration_seconds_count", ())] == 5
    assert after[("comfyui_agent_queue_wait_seconds_count", ())] == 4  # the refused prompt never queued
    assert after[("comfyui_agent_input_fetch_bytes_total", ())] > 0
    assert after[("comfyui_agent_input_fetch_seconds_count", ())] == 1
    assert not [key for key in after if key[0] == "comfyui_agent_store_errors_total"]


async def test_a_store_that_is_down_is_counted_by_operation(double: str) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}/0"
    async with running_agent(comfyui_url=double, task_store=nowhere) as agent:
        assert (await agent.post("/api/run", json=save_prompt(1))).status == 503
        assert (await agent.get("/api/tasks/some-task")).status == 503
        after = await scrape(agent)
    assert after[("comfyui_agent_store_errors_total", (("operation", "claim"),))] == 1
    assert after[("comfyui_agent_store_errors_total", (("operation", "load"),))] == 1


async def test_metrics_need_the_token_unless_public(double: str) -> None:
    async with running_agent(comfyui_url=double, agent_token="s3cret") as agent:
        assert (await agent.get("/metrics")).status == 401
        await scrape(agent, Authorization="Bearer s3cret")
    async with running_agent(comfyui_url=double, agent_token="s3cret", metrics_public=True) as agent:
        await scrape(agent)
