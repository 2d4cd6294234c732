"""Publishing a workflow in one step (`POST /api/workflows`): the editor's saved graph converted, parameters
proposed or as the creator edited them, versions kept and retired; two agents sharing one store (a folder, as
on the NAS, and Redis) serve what either published at once."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from stores.conftest import shared_store
from workflows.test_editor_surfaces import as_run, metadata, saved_t2i

Client = TestClient[web.Request, web.Application]
TOKEN = "publish-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
pytestmark = pytest.mark.timeout(90)


@pytest.fixture(params=["file", "redis"])
async def pair(request: pytest.FixtureRequest, double: str, tmp_path: Path) -> AsyncIterator[tuple[Client, Client]]:
    """Two agents in front of one ComfyUI, sharing one store."""
    store = await shared_store(request.param, tmp_path)
    (tmp_path / "no-files").mkdir()
    async with AsyncExitStack() as stack:
        first, second = [await stack.enter_async_context(running_agent(
            comfyui_url=double, task_store=store, agent_token=TOKEN, workflows_dir=tmp_path / "no-files"))
            for _ in range(2)]
        yield first, second


async def publish(agent: Client, body: dict[str, Any], status: int = 201, **query: str) -> dict[str, Any]:
    reply = await agent.post("/api/workflows", json=body, headers=AUTH, params=query)
    found: dict[str, Any] = await reply.json()
    assert reply.status == status, found
    return found


async def run(agent: Client, reference: str, params: dict[str, Any]) -> dict[str, Any]:
    """A held run of the workflow, then its task as the store has it."""
    reply = await agent.post(f"/api/workflows/{reference}/run", json={"params": params}, headers=AUTH)
    assert reply.status == 200, await reply.text()
    task = await agent.get(f"/api/tasks/{reply.headers['X-Task-Id']}", headers=AUTH, params={"results": "true"})
    found: dict[str, Any] = await task.json()
    return found


async def test_a_saved_graph_is_published_with_proposed_parameters_and_served_by_both(
        pair: tuple[Client, Client]) -> None:
    first, second = pair
    preview = await publish(first, {"name": "scenery", "graph": saved_t2i()}, status=200, dry_run="true")
    assert preview["version"] is None and preview["editor"] is True
    proposed = {parameter["name"]: parameter for parameter in preview["definition"]["parameters"]}
    assert {"6_text", "7_text", "3_seed", "3_steps", "3_cfg", "5_width", "5_height", "4_ckpt_name"} <= set(proposed)
    assert proposed["4_ckpt_name"]["choices_from"] == "CheckpointLoaderSimple.ckpt_name"
    assert (await second.get("/api/workflows/scenery", headers=AUTH)).status == 404  # a dry run keeps nothing

    published = await publish(first, {"name": "scenery", "title": "Scenery", "graph": saved_t2i()})
    assert published["version"] == 1 and published["title"] == "Scenery"
    described = await (await second.get("/api/workflows/scenery", headers=AUTH)).json()  # the other instance
    assert described["version"] == 1 and described["graph"]["3"]["class_type"] == "KSampler"
    assert [found["name"] for found in (await (await second.get("/api/workflows", headers=AUTH)).json())[
        "workflows"]] == ["scenery"]
    task = await run(second, "scenery", {"6_text": "a glass bottle on a beach"})
    assert task["workflow"] == "scenery@1" and task["params"]["6_text"] == "a glass bottle on a beach"
    image = metadata(_first_image(task))
    assert image["prompt"]["6"]["inputs"]["text"] == "a glass bottle on a beach"
    assert image["workflow"] == as_run(saved_t2i(), 6, "a glass bottle on a beach")


def _first_image(task: dict[str, Any]) -> bytes:
    return base64.b64decode(task["progress"]["9"]["results"][0])


async def test_an_edited_proposal_is_a_new_version_and_retiring_one_serves_the_last(
        pair: tuple[Client, Client]) -> None:
    first, second = pair
    proposal = (await publish(first, {"name": "scenery", "graph": saved_t2i()}))["definition"]
    kept = [{**parameter, "name": "prompt", "title": "What to draw"} if parameter["name"] == "6_text" else
            {**parameter, "maximum": 4} if parameter["name"] == "3_steps" else parameter
            for parameter in proposal["parameters"] if parameter["name"] != "3_seed"]  # renamed, bound, hidden
    edited = await publish(second, {**proposal, "parameters": kept})
    assert edited["version"] == 2
    schema = edited["parameters"]["properties"]
    assert schema["prompt"]["title"] == "What to draw" and schema["3_steps"]["maximum"] == 4
    assert "3_seed" not in schema and "6_text" not in schema
    refused = await first.post("/api/workflows/scenery/run", json={"params": {"3_steps": 5}}, headers=AUTH)
    assert refused.status == 400 and (await refused.json())["parameter"] == "3_steps"
    assert (await run(first, "scenery@1", {"3_seed": 5}))["workflow"] == "scenery@1"  # a version by name

    retired = await second.delete("/api/workflows/scenery@2", headers=AUTH)
    assert retired.status == 200 and await retired.json() == {"name": "scenery", "retired": [2]}
    assert (await (await first.get("/api/workflows/scenery", headers=AUTH)).json())["version"] == 1
    gone = await first.post("/api/workflows/scenery@2/run", json={}, headers=AUTH)
    body = await gone.json()
    assert gone.status == 404 and body["error"] == ("workflow scenery@2 is retired; its version in service is "
                                                    "scenery@1"), body
    assert await (await first.delete("/api/workflows/scenery", headers=AUTH)).json() == {
        "name": "scenery", "retired": [1]}
    assert (await second.get("/api/workflows/scenery", headers=AUTH)).status == 404
    again = await second.delete("/api/workflows/scenery", headers=AUTH)
    assert again.status == 404 and (await again.json())["message"] == "NotFound"
    assert (await publish(first, {"name": "scenery", "graph": saved_t2i()}))["version"] == 3  # numbers go on


BAD: list[tuple[str, Any, str, str]] = [
    ("no name", {"graph": {"1": {"class_type": "A", "inputs": {}}}}, "RequestParamsError", "field name: Field "
     "required"),
    ("bad name", {"name": "a b", "graph": {"1": {}}}, "RequestParamsError", "field name: String should match"),
    ("not a graph", {"name": "x", "graph": []}, "RequestParamsError", "field graph: Input should be a valid"),
    ("unknown field", {"name": "x", "graph": {}, "version": 3}, "RequestParamsError", "field version: Extra inputs"),
    ("empty graph", {"name": "x", "graph": {}}, "RequestParamsError", "the prompt must be a non-empty object"),
    ("a node missing", "missing", "WorkflowFormatError", "node 4 (NoSuchNode): this ComfyUI has no such node"),
    ("a bad target", "target", "RequestParamsError", "definition: parameter p: the graph has no node 99"),
    ("not json", "{", "RequestParamsError", "the body is not valid JSON"),
]


@pytest.mark.parametrize(("case", "body", "kind", "message"), BAD, ids=[case for case, *_ in BAD])
async def test_bad_definitions_are_refused_naming_what_and_nothing_is_kept(
        pair: tuple[Client, Client], case: str, body: Any, kind: str, message: str) -> None:
    first, second = pair
    if body == "missing":
        saved = saved_t2i()
        next(node for node in saved["nodes"] if node["id"] == 4)["type"] = "NoSuchNode"
        body = {"name": "x", "graph": saved}
    elif body == "target":
        body = {"name": "x", "graph": saved_t2i(), "parameters": [{"name": "p", "type": "string", "target": "99.text"}]}
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    reply = await first.post("/api/workflows", data=data, headers={**AUTH, "Content-Type": "application/json"})
    found = await reply.json()
    assert reply.status == 400 and found["message"] == kind, found
    assert message in found["error"], found
    assert (await (await second.get("/api/workflows", headers=AUTH)).json())["workflows"] == []


async def test_publishing_and_retiring_need_the_token(pair: tuple[Client, Client]) -> None:
    first, _ = pair
    assert (await first.post("/api/workflows", json={"name": "x", "graph": saved_t2i()})).status == 401
    assert (await first.delete("/api/workflows/x")).status == 401


async def test_the_page_shows_a_published_workflow_to_the_tokens_holders_only(pair: tuple[Client, Client]) -> None:
    first, second = pair
    await publish(first, {"name": "scenery", "graph": saved_t2i()})

    async def listed(**headers: str) -> list[str]:
        reply = await second.get("/app/workflows/", headers=headers)
        assert reply.status == 200
        return [found["name"] for found in (await reply.json())["workflows"]]

    assert await listed() == [] and await listed(**AUTH) == ["scenery"]
    hidden = await second.get("/app/workflows/scenery.json")
    assert hidden.status == 404 and (await hidden.json())["workflows"] == []  # as if there were none
    shown = await second.get("/app/workflows/scenery.json", headers={"Authorization": "Bearer wrong"})
    assert shown.status == 404
    shown = await second.get("/app/workflows/scenery.json", headers=AUTH)
    assert shown.status == 200 and (await shown.json())["3"]["class_type"] == "KSampler"
