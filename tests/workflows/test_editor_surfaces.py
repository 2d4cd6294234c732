"""The editor's saved format where a graph is accepted (`/api/run`, a workflow definition file, a v2 job),
converted against the worker's ComfyUI (the double, which serves ComfyUI 0.3.64's `/object_info`), and the
outputs carrying the saved workflow in their PNG metadata as ComfyUI's own saves do."""

from __future__ import annotations

import base64
import copy
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from comfy_low.models import ErrorEnvelope, Job
from PIL import Image

from agent_harness import running_agent
from waiting import until

Client = TestClient[web.Request, web.Application]
PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "editor-workflows"
pytestmark = pytest.mark.timeout(60)


def saved_t2i() -> dict[str, Any]:
    """The editor's default graph (saved by the editor; tests/fixtures/editor-workflows), made small for the
    double and given the checkpoint it has."""
    graph: dict[str, Any] = json.loads((PAIRS / "default-t2i-sd15.workflow.json").read_text())
    values = {4: ["random-sd15.safetensors"], 5: [64, 64, 1], 3: [7, "fixed", 2, 8, "euler", "normal", 1]}
    for node in graph["nodes"]:
        node["widgets_values"] = values.get(node["id"], node.get("widgets_values"))
    return graph


def as_run(saved: dict[str, Any], node_id: int, text: str) -> dict[str, Any]:
    """The saved graph showing the text a run gave one encoder: what the image's metadata carries, so ComfyUI
    opens it as it was made."""
    next(node for node in saved["nodes"] if node["id"] == node_id)["widgets_values"] = [text]
    return saved


def metadata(image: bytes) -> dict[str, Any]:
    """The text chunks of a PNG, as the editor reads them when a file is dropped on it."""
    with Image.open(io.BytesIO(image)) as opened:
        return {key: json.loads(value) for key, value in opened.text.items()}  # type: ignore[attr-defined]


@pytest.fixture
async def agent(double: str, tmp_path: Path) -> AsyncIterator[Client]:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "saved.json").write_text(json.dumps(saved_t2i()))  # a bare graph as the editor saved it
    (workflows / "declared.json").write_text(json.dumps({
        "title": "Declared", "graph": saved_t2i(),
        "parameters": [{"name": "prompt", "type": "string", "target": "6.text"}]}))
    broken = saved_t2i()
    next(node for node in broken["nodes"] if node["id"] == 4)["type"] = "NoSuchNode"
    (workflows / "broken.json").write_text(json.dumps(broken))
    async with running_agent(comfyui_url=double, workflows_dir=workflows) as client:
        yield client


async def test_a_saved_graph_runs_and_its_image_carries_it(agent: Client) -> None:
    saved = saved_t2i()
    reply = await agent.post("/api/run", json=saved)
    body = await reply.json()
    assert reply.status == 200, body
    image = base64.b64decode(body["9"]["results"][0])
    found = metadata(image)
    assert found["workflow"] == saved  # dropped on the editor, it opens the graph as saved
    assert found["prompt"]["3"]["inputs"]["steps"] == 2 and found["prompt"]["3"]["class_type"] == "KSampler"
    assert found["prompt"]["6"]["inputs"]["clip"] == ["4", 1]


async def test_the_envelope_takes_a_saved_graph_and_comfyuis_own_pnginfo(agent: Client) -> None:
    api = json.loads((PAIRS / "default-t2i-sd15.api.json").read_text())
    api["4"]["inputs"]["ckpt_name"] = "random-sd15.safetensors"
    api["5"]["inputs"].update(width=64, height=64)
    api["3"]["inputs"]["steps"] = 2
    own = {"workflow": {"note": "as the editor sends it"}, "extra": [1]}
    reply = await agent.post("/api/run", json={"prompt": api, "extra_data": {"extra_pnginfo": own}})
    body = await reply.json()
    assert reply.status == 200, body
    found = metadata(base64.b64decode(body["9"]["results"][0]))
    assert {key: found[key] for key in own} == own and set(found) == {"prompt", *own}
    assert found["prompt"].keys() == api.keys()
    enveloped = await agent.post("/api/run", json={"prompt": saved_t2i(), "options": {"results": False}})
    assert enveloped.status == 200, await enveloped.text()


async def test_a_graph_that_cannot_be_converted_is_a_400_naming_the_node(agent: Client) -> None:
    cases = {"missing class": ("NoSuchNode", "node 4 (NoSuchNode): this ComfyUI has no such node"),
             "missing origin": (None, "a link comes from node 99")}
    for case, (kind, message) in cases.items():
        saved = saved_t2i()
        if kind is not None:
            next(node for node in saved["nodes"] if node["id"] == 4)["type"] = kind
        else:
            saved["links"] = [[link[0], 99, *link[2:]] if link[0] == 1 else link for link in saved["links"]]
        reply = await agent.post("/api/run", json=saved, headers={"task-id": f"bad-{len(message)}"})
        body = await reply.json()
        assert reply.status == 400 and body["message"] == "WorkflowFormatError", (case, body)
        assert message in body["error"], (case, body)
        assert (await agent.get(f"/api/tasks/bad-{len(message)}")).status == 404  # nothing ran, nothing stored


async def test_workflow_files_saved_by_the_editor_are_served_converted(agent: Client) -> None:
    listed = await (await agent.get("/api/workflows")).json()
    assert [found["name"] for found in listed["workflows"]] == ["declared", "saved"]  # the broken one left out
    saved = await (await agent.get("/api/workflows/saved")).json()
    assert saved["graph"]["3"]["class_type"] == "KSampler"  # the API format, run as the definition says
    assert {"6_text", "3_seed", "3_steps", "4_ckpt_name"} <= set(saved["parameters"]["properties"])
    reply = await agent.post("/api/workflows/declared/run", json={"params": {"prompt": "a lake at dusk"}})
    body = await reply.json()
    assert reply.status == 200, body
    found = metadata(base64.b64decode(body["9"]["results"][0]))
    assert found["prompt"]["6"]["inputs"]["text"] == "a lake at dusk"
    assert found["workflow"]["nodes"] == as_run(saved_t2i(), 6, "a lake at dusk")["nodes"]
    broken = await agent.post("/api/workflows/broken/run", json={})
    body = await broken.json()
    assert broken.status == 400 and body["message"] == "WorkflowFormatError" and body["node_id"] == "4", body


async def test_the_editor_graph_is_not_changed_by_the_conversion(agent: Client) -> None:
    saved = saved_t2i()
    kept = copy.deepcopy(saved)
    reply = await agent.post("/api/run", json={"prompt": saved, "options": {"results": False}})
    assert reply.status == 200 and saved == kept


async def test_a_v2_job_takes_a_saved_graph(agent: Client) -> None:
    """Sent as plain HTTP: `comfy-sdk` itself refuses the editor's format before sending (its `WorkflowFormatUi`),
    so this is for other v2 callers."""
    saved = saved_t2i()
    reply = await agent.post("/api/v2/jobs", json={"workflow": saved})
    job = Job.model_validate(await reply.json())
    assert reply.status == 201, job
    ended = await until(lambda: _ended(agent, job.id), 30, "the job's end")
    assert ended.status.value == "succeeded", ended
    assert (await (await agent.get(f"/api/v2/jobs/{job.id}/workflow")).json())["workflow"] == saved
    saved["nodes"][0]["type"] = "NoSuchNode"
    refused = await agent.post("/api/v2/jobs", json={"workflow": saved})
    envelope = ErrorEnvelope.model_validate(await refused.json())
    assert refused.status == 422 and envelope.error.code == "invalid_workflow", envelope
    assert envelope.error.details == {"kind": "WorkflowFormatError", "node_id": "7", "class_type": "NoSuchNode"}


async def _ended(agent: Client, job_id: str) -> Job | None:
    job = Job.model_validate(await (await agent.get(f"/api/v2/jobs/{job_id}")).json())
    return job if job.status.value in {"succeeded", "failed", "canceled"} else None
