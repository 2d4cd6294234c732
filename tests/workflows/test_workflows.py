"""Workflows as endpoints against the double: every parameter type, every 400, a graph without a declaration,
a definition added while the agent runs, and the bundled workflows on an install without their default model."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from comfy_double.harness import start_double
from files_server import png

Client = TestClient[web.Request, web.Application]
BUNDLED = Path(__file__).resolve().parents[2] / "comfyui" / "workflows"

GRAPH: dict[str, Any] = {
    "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random-sd15.safetensors"}},
    "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
    "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "a lake", "clip": ["4", 1]}},
    "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
    "3": {"class_type": "KSampler", "inputs": {"seed": 1, "steps": 2, "cfg": 7, "sampler_name": "euler",
                                               "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                               "positive": ["6", 0], "negative": ["7", 0], "latent_image": ["5", 0]}},
    "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
    "9": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["8", 0], "filename_prefix": "wf", "fps": 6.0,
                                                       "lossless": True, "quality": 80, "method": "default"}},
}
EVERY_TYPE = {
    "title": "Every type", "description": "One parameter of each kind.", "graph": GRAPH,
    "parameters": [
        {"name": "prompt", "type": "string", "target": ["6.text", "7.text"], "title": "Prompt"},
        {"name": "seed", "type": "seed", "target": "3.seed"},
        {"name": "steps", "type": "integer", "target": "3.steps", "minimum": 1, "maximum": 10},
        {"name": "cfg", "type": "number", "target": "3.cfg", "minimum": 0, "maximum": 20},
        {"name": "lossless", "type": "boolean", "target": "9.lossless"},
        {"name": "sampler", "type": "enum", "target": "3.sampler_name", "choices": ["euler", "dpmpp_2m"]},
        {"name": "checkpoint", "type": "enum", "target": "4.ckpt_name",
         "choices_from": "CheckpointLoaderSimple.ckpt_name"},
    ],
}
INVERT = {
    "graph": {"1": {"class_type": "LoadImage", "inputs": {"image": "none.png"}},
              "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
              "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "inv"}}},
    "parameters": [{"name": "image", "type": "image", "target": "1.image"}],
}


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "every.json").write_text(json.dumps(EVERY_TYPE))
    (workflows / "invert.json").write_text(json.dumps(INVERT))
    (workflows / "bare.json").write_text(json.dumps(GRAPH))
    (workflows / "broken.json").write_text('{"graph": {"1": {}}, "parameters": [{"name": "x"}]}')
    return workflows


@pytest.fixture
async def agent(double: str, folder: Path) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, workflows_dir=folder) as client:
        yield client


async def sent_graph(double: str, prompt_id: str) -> dict[str, Any]:
    """The graph ComfyUI got, from its own history."""
    async with aiohttp.ClientSession() as session, session.get(f"{double}/history/{prompt_id}") as reply:
        graph: dict[str, Any] = (await reply.json())[prompt_id]["prompt"][2]
        return graph


async def test_the_list_and_one_workflow_give_their_parameters_as_json_schema(agent: Client) -> None:
    listed = {workflow["name"]: workflow for workflow in (await (await agent.get("/api/workflows")).json())[
        "workflows"]}
    assert set(listed) == {"every", "invert", "bare"}  # the broken file is left out
    schema = listed["every"]["parameters"]
    assert schema["additionalProperties"] is False
    kinds = {name: spec.get("type") for name, spec in schema["properties"].items()}
    assert kinds == {"prompt": "string", "seed": "integer", "steps": "integer", "cfg": "number",
                     "lossless": "boolean", "sampler": None, "checkpoint": None}
    assert schema["properties"]["checkpoint"]["enum"] == ["random-sd15.safetensors"]  # from ComfyUI
    assert schema["properties"]["sampler"]["enum"] == ["euler", "dpmpp_2m"]
    assert schema["properties"]["steps"].items() >= {"minimum": 1, "maximum": 10, "default": 2}.items()
    one = await (await agent.get("/api/workflows/every")).json()
    assert one["title"] == "Every type" and one["graph"] == GRAPH and one["parameters"] == schema
    assert (await agent.get("/api/workflows/nope")).status == 404


async def test_every_type_reaches_comfyui_and_the_task_records_the_seed(agent: Client, double: str) -> None:
    params = {"prompt": "a fox", "seed": -1, "steps": 3, "cfg": 4.5, "lossless": False, "sampler": "dpmpp_2m",
              "checkpoint": "random-sd15.safetensors"}
    reply = await agent.post("/api/workflows/every/run", json={"params": params, "options": {"results": False}},
                             headers={"task-id": "wf-1"})
    assert reply.status == 200, await reply.text()
    task = await (await agent.get("/api/tasks/wf-1")).json()
    seed = task["params"]["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**48 and task["params"] == {**params, "seed": seed}
    graph = await sent_graph(double, task["prompt_id"])
    assert graph["6"]["inputs"]["text"] == graph["7"]["inputs"]["text"] == "a fox"
    assert (graph["3"]["inputs"]["seed"], graph["3"]["inputs"]["steps"], graph["3"]["inputs"]["cfg"]) == (seed, 3, 4.5)
    assert graph["3"]["inputs"]["sampler_name"] == "dpmpp_2m" and graph["9"]["inputs"]["lossless"] is False


async def test_defaults_come_from_the_graph(agent: Client, double: str) -> None:
    reply = await agent.post("/api/workflows/every/run", json={}, headers={"task-id": "wf-2"})
    assert reply.status == 200, await reply.text()
    task = await (await agent.get("/api/tasks/wf-2")).json()
    assert task["params"]["seed"] == 1 and task["params"]["prompt"] == "a lake"
    assert (await sent_graph(double, task["prompt_id"]))["3"]["inputs"]["steps"] == 2


async def test_an_image_parameter_takes_base64_like_any_loader_input(agent: Client) -> None:
    data = base64.b64encode(png((10, 20, 30))).decode()
    reply = await agent.post("/api/workflows/invert/run", json={"params": {"image": data}})
    body = await reply.json()
    assert reply.status == 200, body
    assert body["3"]["results"] and body["3"]["images"][0]["filename"].endswith(".png")


BAD = [
    ("unknown", {"colour": 1}, "colour", "unknown; workflow every takes"),
    ("string", {"prompt": 5}, "prompt", "must be a string"),
    ("integer", {"steps": 2.5}, "steps", "must be an integer"),
    ("integer as text", {"steps": "3"}, "steps", "must be an integer"),
    ("below", {"steps": 0}, "steps", "below the minimum 1"),
    ("above", {"cfg": 21}, "cfg", "above the maximum 20"),
    ("number", {"cfg": "high"}, "cfg", "must be a number"),
    ("boolean", {"lossless": 1}, "lossless", "must be true or false"),
    ("seed", {"seed": -2}, "seed", "must be -1 (drawn at random) or 0 to"),
    ("listed enum", {"sampler": "ddim"}, "sampler", "'ddim' is not one of the choices (euler, dpmpp_2m)"),
    ("enum from ComfyUI", {"checkpoint": "sdxl.safetensors"}, "checkpoint", "random-sd15.safetensors"),
]


@pytest.mark.parametrize(("case", "params", "name", "why"), BAD, ids=[case for case, *_ in BAD])
async def test_a_bad_parameter_is_a_400_naming_it_and_nothing_runs(
        agent: Client, case: str, params: dict[str, Any], name: str, why: str) -> None:
    reply = await agent.post("/api/workflows/every/run", json={"params": params}, headers={"task-id": "bad-1"})
    body = await reply.json()
    assert reply.status == 400 and body["message"] == "RequestParamsError", body
    assert body["parameter"] == name and why in body["error"]
    assert (await agent.get("/api/tasks/bad-1")).status == 404


@pytest.mark.parametrize("body", [b"[1]", b"{", b'{"params": [1]}', b'{"prompt": {}}', b'{"options": {"x": 1}}'])
async def test_a_bad_body_is_a_400(agent: Client, body: bytes) -> None:
    reply = await agent.post("/api/workflows/every/run", data=body)
    assert reply.status == 400 and (await reply.json())["message"] == "RequestParamsError"


async def test_a_graph_without_a_declaration_gets_the_pages_parameters(agent: Client, double: str) -> None:
    bare = await (await agent.get("/api/workflows/bare")).json()
    assert bare["declared"] is False
    assert set(bare["parameters"]["properties"]) == {
        "4_ckpt_name", "5_width", "5_height", "5_batch_size", "6_text", "7_text", "3_seed", "3_steps", "3_cfg",
        "3_denoise"}
    reply = await agent.post("/api/workflows/bare/run", json={"params": {"3_steps": 4}}, headers={"task-id": "b-1"})
    assert reply.status == 200, await reply.text()
    task = await (await agent.get("/api/tasks/b-1")).json()
    assert (await sent_graph(double, task["prompt_id"]))["3"]["inputs"]["steps"] == 4


async def test_a_definition_added_while_the_agent_runs_appears_without_a_restart(agent: Client, folder: Path) -> None:
    assert (await agent.get("/api/workflows/late")).status == 404
    (folder / "late.json").write_text(json.dumps({**INVERT, "title": "Late"}))
    late = await agent.get("/api/workflows/late")
    assert late.status == 200 and (await late.json())["title"] == "Late"
    names = [workflow["name"] for workflow in (await (await agent.get("/api/workflows")).json())["workflows"]]
    assert "late" in names


async def test_each_workflow_has_its_own_run_in_the_served_contract(agent: Client) -> None:
    from openapi_spec_validator import validate

    served = await (await agent.get("/openapi.json")).json()
    validate(served)
    operation = served["paths"]["/api/workflows/every/run"]["post"]
    params = operation["requestBody"]["content"]["application/json"]["schema"]["properties"]["params"]
    assert params["properties"]["checkpoint"]["enum"] == ["random-sd15.safetensors"]
    assert operation["summary"] == "Every type" and "404" in operation["responses"]
    assert "/api/workflows/broken/run" not in served["paths"]


async def test_an_unknown_workflow_is_a_404_that_lists_the_known_ones(agent: Client) -> None:
    for reply in (await agent.get("/api/workflows/txt2im"), await agent.post("/api/workflows/txt2im/run", json={})):
        body = await reply.json()
        assert reply.status == 404 and body["message"] == "NotFound", body
        assert body["workflows"] == ["bare", "every", "invert"]
        assert body["error"] == "no workflow txt2im; the workflows are: bare, every, invert"


async def test_a_default_model_comfyui_lacks_is_refused_naming_the_ones_it_has(double: str, tmp_path: Path) -> None:
    """The definition's default checkpoint is not installed: a 400 before anything runs, never ComfyUI's
    PromptValidationError (a model given by the caller is judged the same way: BAD above)."""
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    graph = {**GRAPH, "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "absent.safetensors"}}}
    (workflows / "every.json").write_text(json.dumps({**EVERY_TYPE, "graph": graph}))
    async with running_agent(comfyui_url=double, workflows_dir=workflows) as agent:
        reply = await agent.post("/api/workflows/every/run", json={}, headers={"task-id": "default-1"})
        body = await reply.json()
        assert reply.status == 400 and body["message"] == "RequestParamsError", body
        assert body["parameter"] == "checkpoint"
        assert body["error"] == ("parameter checkpoint: 'absent.safetensors' (the default) is not one of the choices "
                                 "(random-sd15.safetensors)")
        assert (await agent.get("/api/tasks/default-1")).status == 404
        chosen = await agent.post("/api/workflows/every/run",
                                  json={"params": {"checkpoint": "random-sd15.safetensors"}})
        assert chosen.status == 200, await chosen.text()


@pytest.fixture
async def no_models(tmp_path: Path) -> AsyncIterator[str]:
    """A ComfyUI with no checkpoint installed."""
    runner, url = await start_double(tmp_path / "bare-comfyui", checkpoints=[])
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("params", [{}, {"checkpoint": "v1-5-pruned-emaonly.safetensors"}], ids=["default", "given"])
async def test_with_no_model_installed_the_refusal_says_where_models_go(
        no_models: str, params: dict[str, str]) -> None:
    async with running_agent(comfyui_url=no_models, workflows_dir=BUNDLED) as agent:
        described = await (await agent.get("/api/workflows/txt2img")).json()
        checkpoint = described["parameters"]["properties"]["checkpoint"]
        assert checkpoint["enum"] == [] and checkpoint["x-models-folder"] == "models/checkpoints"
        reply = await agent.post("/api/workflows/txt2img/run", json={"params": params})
        body = await reply.json()
    assert reply.status == 400 and body["parameter"] == "checkpoint", body
    assert "'v1-5-pruned-emaonly.safetensors'" in body["error"] and "ComfyUI has none" in body["error"]
    assert "models/checkpoints folder ($NAS_DIR/models/checkpoints on Function Compute)" in body["error"]


@pytest.mark.parametrize("name", ["txt2img", "img2img"])
async def test_the_bundled_workflows_name_the_installed_models_instead_of_failing_in_comfyui(
        double: str, name: str) -> None:
    """The README's `POST /api/workflows/txt2img/run` on an install without the default checkpoint."""
    params: dict[str, Any]
    async with running_agent(comfyui_url=double, workflows_dir=BUNDLED) as agent:
        refused = await agent.post(f"/api/workflows/{name}/run", json={"params": {"steps": 2}})
        body = await refused.json()
        assert refused.status == 400 and body["message"] == "RequestParamsError", body
        assert body["parameter"] == "checkpoint"
        assert "'v1-5-pruned-emaonly.safetensors' (the default)" in body["error"]
        assert "(random-sd15.safetensors)" in body["error"]
        params = {"steps": 2, "width": 64, "height": 64, "checkpoint": "random-sd15.safetensors"}
        if name == "img2img":  # the double's input folder lacks ComfyUI's example.png
            params["image"] = base64.b64encode(png((10, 20, 30))).decode()
        ran = await agent.post(f"/api/workflows/{name}/run", json={"params": params, "options": {"results": False}})
        assert ran.status == 200, await ran.text()
