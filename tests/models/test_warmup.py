"""The warm-up (`WARMUP_WORKFLOW`): off FC as the agent starts, on FC at `POST /initialize`; a workflow whose
model is named by URL has it fetched before the first user's run, which finds it in place; the cold start told
in the log, /metrics and the first task's timings."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from agent_harness import running_agent, scrape
from double_helpers import double_info
from model_server import ModelServer
from models.test_run_models import MODEL, TXT2IMG, agent_settings, comfyui, server  # noqa: F401 - fixtures
from waiting import EVENTUALLY, until


def warm_workflow(folder: Path, checkpoint: str) -> Path:
    """A workflow whose checkpoint is named by URL, as its default."""
    graph = copy.deepcopy(TXT2IMG)
    graph["3"]["inputs"]["steps"] = 1
    graph["4"]["inputs"]["ckpt_name"] = checkpoint
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "warm.json"
    path.write_text(json.dumps({"title": "Warm-up", "graph": graph, "parameters": [
        {"name": "checkpoint", "type": "enum", "target": "4.ckpt_name",
         "choices_from": "CheckpointLoaderSimple.ckpt_name"}]}))
    return path


def cold_start(metrics: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {labels[0][1]: value for (name, labels), value in metrics.items()
            if name == "comfyui_agent_cold_start_seconds"}


async def test_off_fc_the_warmup_fetches_the_workflows_model_before_the_first_run(
        tmp_path: Path, comfyui: str, server: tuple[ModelServer, str],  # noqa: F811
        caplog: pytest.LogCaptureFixture) -> None:
    files, url = server
    model_url = f"{url}/m/sd15.safetensors"
    warm_workflow(tmp_path / "workflows", model_url)
    caplog.set_level(logging.INFO, logger="agent")
    async with running_agent(**agent_settings(tmp_path, comfyui, workflows_dir=tmp_path / "workflows",
                                              warmup_workflow="warm")) as agent:

        async def warmed() -> dict[str, float] | None:
            told = cold_start(await scrape(agent))
            return told if "warmup" in told else None

        told = await until(warmed, EVENTUALLY, "the warm-up to end")
        assert 0 < told["agent"] <= told["comfyui"] <= told["warmup"]
        reply = await agent.post("/api/workflows/warm/run", json={}, headers={"task-id": "first-user-run"})
        assert reply.status == 200, await reply.text()
        task: dict[str, Any] = await (await agent.get("/api/tasks/first-user-run")).json()
    assert files.hits["/m/sd15.safetensors"] == 1
    assert task["models"][0]["source"] == "cached" and task["models"][0]["bytes"] == len(MODEL)
    assert task["timings"]["cold_start"] == told
    assert (await double_info(comfyui))["prompts_queued"] == 2  # the warm-up's and the user's
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("coldstart")]
    assert len(lines) == 1 and f"warmup={told['warmup']}" in lines[0]


async def test_on_fc_the_warmup_waits_for_initialize(tmp_path: Path, comfyui: str,  # noqa: F811
                                                      server: tuple[ModelServer, str]) -> None:  # noqa: F811
    files, url = server
    warm_workflow(tmp_path / "flows", f"{url}/m/sd15.safetensors")
    settings = agent_settings(tmp_path, comfyui, warmup_workflow=str(tmp_path / "flows" / "warm.json"),
                              fc_function_name="comfyui")
    async with running_agent(**settings) as agent:
        assert (await double_info(comfyui))["prompts_received"] == 0 and not files.hits
        reply = await agent.post("/initialize")
        body = await reply.json()
        assert reply.status == 200 and body["warmup"]["task_id"].startswith("warmup-"), body
        again = await (await agent.post("/initialize")).json()  # FC may call it again: nothing runs twice
        assert again["warmup"] == body["warmup"]
        warmup = await (await agent.get(f"/api/tasks/{body['warmup']['task_id']}")).json()
    assert warmup["workflow"] == "warm" and warmup["models"][0]["source"] == "downloaded"
    assert (await double_info(comfyui))["prompts_queued"] == 1


async def test_a_warmup_that_names_no_workflow_fails_initialize(tmp_path: Path, comfyui: str) -> None:  # noqa: F811
    async with running_agent(**agent_settings(tmp_path, comfyui, warmup_workflow="nothing-by-this-name",
                                              fc_function_name="comfyui")) as agent:
        reply = await agent.post("/initialize")
        body = await reply.json()
    assert reply.status == 500 and body["message"] == "WarmupFailed"
    assert "no workflow nothing-by-this-name" in body["error"]


async def test_without_a_warmup_the_cold_start_ends_when_comfyui_is_ready(comfyui: str) -> None:  # noqa: F811
    async with running_agent(comfyui_url=comfyui) as agent:

        async def ready() -> dict[str, float] | None:
            told = cold_start(await scrape(agent))
            return told if "comfyui" in told else None

        told = await until(ready, EVENTUALLY, "ComfyUI's readiness to be noted")
        reply = await agent.post("/api/run", json={"prompt": {"1": {"class_type": "EmptyImage", "inputs": {
            "width": 8, "height": 8, "batch_size": 1, "color": 0}}, "2": {"class_type": "PreviewImage",
                                                                           "inputs": {"images": ["1", 0]}}}},
            headers={"task-id": "first"})
        assert reply.status == 200
        second = await agent.post("/api/run", json={"prompt": {"1": {"class_type": "EmptyImage", "inputs": {
            "width": 8, "height": 8, "batch_size": 1, "color": 1}}, "2": {"class_type": "PreviewImage",
                                                                           "inputs": {"images": ["1", 0]}}}},
            headers={"task-id": "second"})
        assert second.status == 200
        first_task = await (await agent.get("/api/tasks/first")).json()
        second_task = await (await agent.get("/api/tasks/second")).json()
    assert set(told) == {"agent", "comfyui"}
    assert first_task["timings"]["cold_start"] == {**told, "warmup": None}
    assert second_task["timings"]["cold_start"] is None
