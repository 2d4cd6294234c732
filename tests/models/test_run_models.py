"""A run naming its checkpoint and LoRA by URL, through the agent and the double reading the models folder as
ComfyUI does (`--extra-model-paths-config`): the graph ComfyUI gets names the downloaded files; the task, its
event stream and /metrics show the download; bad references are the JSON error naming the input, nothing run;
two agents sharing a folder and a store download a model once."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent, scrape, serving
from comfy_double.harness import start_double
from double_helpers import double_info
from model_server import ModelServer, safetensors, sha256
from sse_client import read_events
from waiting import EVENTUALLY

Client = TestClient[web.Request, web.Application]
MODEL = safetensors(2 << 20, seed=3)
LORA = safetensors(100_000, seed=4)
TXT2IMG = json.loads((Path(__file__).parents[2] / "comfyui" / "workflows" / "txt2img.json").read_text())["graph"]


@pytest.fixture
async def server() -> AsyncIterator[tuple[ModelServer, str]]:
    files = ModelServer({"sd15.safetensors": MODEL, "detail.safetensors": LORA})
    async with serving(files.app()) as url:
        yield files, url


@pytest.fixture
async def comfyui(tmp_path: Path) -> AsyncIterator[str]:
    """The double, its model lists read from tmp_path/models as ComfyUI reads the NAS's."""
    models = tmp_path / "models"
    runner, url = await start_double(tmp_path / "comfyui", model_paths={
        kind: [models / kind] for kind in ("checkpoints", "loras")})
    try:
        yield url
    finally:
        await runner.cleanup()


def agent_settings(tmp_path: Path, comfyui: str, **more: Any) -> dict[str, Any]:
    return {"comfyui_url": comfyui, "models_dir": tmp_path / "models",
            "url_allow_hosts": frozenset({"127.0.0.1"}), **more}


def with_models(checkpoint: str, lora: str | None = None) -> dict[str, Any]:
    graph = copy.deepcopy(TXT2IMG)
    graph["3"]["inputs"]["steps"] = 2
    graph["4"]["inputs"]["ckpt_name"] = checkpoint
    if lora is not None:
        graph["10"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], "lora_name": lora,
                                                             "strength_model": 0.8, "strength_clip": 0.8}}
        graph["3"]["inputs"]["model"] = ["10", 0]
        for encoder in ("6", "7"):
            graph[encoder]["inputs"]["clip"] = ["10", 1]
    return {"prompt": graph}


async def comfyui_got(comfyui: str, prompt_id: str) -> dict[str, Any]:
    """The graph ComfyUI ran, from its history."""
    async with aiohttp.ClientSession() as session, session.get(f"{comfyui}/history/{prompt_id}") as reply:
        history: dict[str, Any] = await reply.json()
    graph: dict[str, Any] = history[prompt_id]["prompt"][2]
    return graph


async def test_a_run_names_its_models_by_url(tmp_path: Path, comfyui: str, server: tuple[ModelServer, str]) -> None:
    _, url = server
    lora = f"{url}/m/detail.safetensors#sha256={sha256(LORA)}"
    async with running_agent(**agent_settings(tmp_path, comfyui)) as agent:
        response = await agent.post("/api/run", json=with_models(f"{url}/m/sd15.safetensors", lora),
                                    headers={"task-id": "models-1"})
        assert response.status == 200, await response.text()
        task = await (await agent.get("/api/tasks/models-1")).json()
        metrics = await scrape(agent)
    assert task["status"] == "succeeded"
    fetched = {fetch["folder"]: fetch for fetch in task["models"]}
    assert fetched["checkpoints"]["source"] == fetched["loras"]["source"] == "downloaded"
    assert (fetched["checkpoints"]["bytes"], fetched["loras"]["bytes"]) == (len(MODEL), len(LORA))
    assert task["timings"]["models"] is not None and task["timings"]["models"] >= 0
    ran = await comfyui_got(comfyui, task["prompt_id"])
    assert ran["4"]["inputs"]["ckpt_name"] == fetched["checkpoints"]["name"]
    assert ran["10"]["inputs"]["lora_name"] == fetched["loras"]["name"]
    assert (tmp_path / "models" / "checkpoints" / fetched["checkpoints"]["name"]).read_bytes() == MODEL
    assert metrics[("comfyui_agent_model_download_bytes_total", ())] == len(MODEL) + len(LORA)
    assert metrics[("comfyui_agent_models_total", (("folder", "checkpoints"), ("source", "downloaded")))] == 1


async def test_the_event_stream_tells_the_download(tmp_path: Path, comfyui: str,
                                                   server: tuple[ModelServer, str]) -> None:
    _, url = server
    async with running_agent(**agent_settings(tmp_path, comfyui)) as agent:
        response = await agent.post("/api/run", json=with_models(f"{url}/m/sd15.safetensors"),
                                    headers={"Accept": "text/event-stream"})
        events = await asyncio.wait_for(read_events(response), EVENTUALLY)
    told = [event.data for event in events if event.event == "models"]
    assert told and told[-1]["done"] is True
    assert told[-1]["models"][0]["bytes"] == told[-1]["models"][0]["total"] == len(MODEL)
    assert [event.event for event in events].index("models") < [event.event for event in events].index("progress")
    assert events[-1].data["models"] == told[-1]["models"]


@pytest.mark.parametrize(("model", "status", "kind", "reason"), [
    ("{url}/m/none.safetensors", 400, "ModelError", "HTTP 404"),
    ("{url}/page/x.safetensors", 400, "ModelError", "not a model file"),
    ("{url}/m/sd15.safetensors#sha256=" + "0" * 64, 400, "ModelError", "checksum mismatch"),
    ("http://10.0.0.1/x.safetensors", 400, "ModelError", "refused address"),
])
async def test_a_bad_model_is_the_json_error_naming_the_input_and_nothing_runs(
        tmp_path: Path, comfyui: str, server: tuple[ModelServer, str], model: str, status: int, kind: str,
        reason: str) -> None:
    _, url = server
    async with running_agent(**agent_settings(tmp_path, comfyui)) as agent:
        response = await agent.post("/api/run", json=with_models(model.format(url=url)))
        body = await response.json()
    assert response.status == status, body
    assert body["message"] == kind and (body["node_id"], body["input"]) == ("4", "ckpt_name")
    assert reason in body["reason"]
    assert (await double_info(comfyui))["prompts_received"] == 0
    assert not [path for path in (tmp_path / "models").rglob("*") if path.is_file() and ".downloads" not in path.parts]


async def test_a_model_url_in_an_input_that_takes_none_is_refused(tmp_path: Path, comfyui: str,
                                                                   server: tuple[ModelServer, str]) -> None:
    _, url = server
    prompt = with_models("v1-5-pruned-emaonly.safetensors")
    prompt["prompt"]["6"]["inputs"]["text"] = f"{url}/m/sd15.safetensors"
    async with running_agent(**agent_settings(tmp_path, comfyui)) as agent:
        response = await agent.post("/api/run", json=prompt)
        body = await response.json()
    assert response.status == 400 and body["message"] == "ModelError"
    assert (body["node_id"], body["input"]) == ("6", "text") and "CLIPTextEncode.text takes no model" in body["reason"]


async def test_two_agents_sharing_a_folder_and_a_store_download_a_model_once(
        tmp_path: Path, comfyui: str, server: tuple[ModelServer, str]) -> None:
    """Ten runs on two instances (one NAS folder, one store): one download, the other runs wait on it."""
    files, url = server
    shared = agent_settings(tmp_path, comfyui, task_store=f"file://{tmp_path / 'tasks'}")
    prompt = with_models(f"{url}/hold/sd15.safetensors")
    async with running_agent(**shared) as first, running_agent(**shared) as second:
        runs = [asyncio.ensure_future((first if index % 2 else second).post(
            "/api/run", json=prompt, headers={"task-id": f"shared-{index}"})) for index in range(10)]
        await asyncio.wait_for(files.held.wait(), EVENTUALLY)
        files.release.set()
        replies = await asyncio.wait_for(asyncio.gather(*runs), EVENTUALLY * 2)
        assert [reply.status for reply in replies] == [200] * 10
        tasks = [await (await first.get(f"/api/tasks/shared-{index}")).json() for index in range(10)]
    assert files.hits["/hold/sd15.safetensors"] == 1
    sources = sorted(task["models"][0]["source"] for task in tasks)
    assert sources.count("downloaded") == 1 and set(sources) <= {"downloaded", "waited", "cached"}
