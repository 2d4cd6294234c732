"""The models API, behind the token: the folder listed with size, origin and last use; a model pulled by URL
(held, or in the background and polled); a model removed; every refusal in the JSON error shape. A pulled model
is offered by the workflows' model pickers at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.models.refs import ModelRef
from agent_harness import running_agent, serving
from model_server import ModelServer, safetensors, sha256
from models.test_run_models import agent_settings, comfyui  # noqa: F401 - the fixture
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]
MODEL = safetensors(1 << 20, seed=5)
TOKEN = "models-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def server() -> AsyncIterator[tuple[ModelServer, str]]:
    files = ModelServer({"sd15.safetensors": MODEL})
    async with serving(files.app()) as url:
        yield files, url


@pytest.fixture
async def agent(tmp_path: Path, comfyui: str) -> AsyncIterator[Client]:  # noqa: F811
    async with running_agent(**agent_settings(tmp_path, comfyui, agent_token=TOKEN)) as client:
        yield client


async def models(agent: Client, **query: str) -> list[dict[str, Any]]:
    reply = await agent.get("/api/models", params=query, headers=AUTH)
    assert reply.status == 200, await reply.text()
    found: list[dict[str, Any]] = (await reply.json())["models"]
    return found


async def checkpoint_choices(agent: Client) -> list[str]:
    reply = await agent.get("/api/workflows/txt2img", headers=AUTH)
    body = await reply.json()
    choices: list[str] = body["parameters"]["properties"]["checkpoint"]["enum"]
    return choices


async def test_a_model_pulled_by_url_is_listed_and_offered(tmp_path: Path, agent: Client,
                                                           server: tuple[ModelServer, str]) -> None:
    _, url = server
    (tmp_path / "models" / "loras").mkdir(parents=True)
    (tmp_path / "models" / "loras" / "mine.safetensors").write_bytes(b"placed by hand")
    reply = await agent.post("/api/models", json={"url": f"{url}/m/sd15.safetensors#sha256={sha256(MODEL)}",
                                                  "folder": "checkpoints"}, headers=AUTH)
    body = await reply.json()
    assert reply.status == 200, body
    pull = body["pull"]
    assert pull["status"] == "succeeded" and pull["source"] == "downloaded"
    assert pull["bytes"] == pull["total"] == len(MODEL) and pull["url"] == f"{url}/m/sd15.safetensors"
    listed = {entry["name"]: entry for entry in await models(agent)}
    assert listed["mine.safetensors"] == {"folder": "loras", "name": "mine.safetensors", "bytes": 14,
                                          "origin": "placed", "url": None, "sha256": None, "downloaded_at": None,
                                          "last_used": None}
    pulled = listed[pull["name"]]
    assert (pulled["origin"], pulled["folder"], pulled["bytes"]) == ("url", "checkpoints", len(MODEL))
    assert pulled["sha256"] == sha256(MODEL) and pulled["last_used"] >= pulled["downloaded_at"] > 0
    assert [entry["name"] for entry in await models(agent, folder="loras")] == ["mine.safetensors"]
    assert pull["name"] in await checkpoint_choices(agent)
    run = await agent.post("/api/workflows/txt2img/run", json={"params": {"checkpoint": pull["name"], "steps": 1}},
                           headers=AUTH)
    assert run.status == 200, await run.text()


async def test_a_pull_in_the_background_is_polled_to_its_end(agent: Client, server: tuple[ModelServer, str]) -> None:
    files, url = server
    reply = await agent.post("/api/models", json={"url": f"{url}/hold/sd15.safetensors", "folder": "checkpoints"},
                             headers={**AUTH, "Prefer": "respond-async"})
    body = await reply.json()
    assert reply.status == 202 and reply.headers["Location"] == body["status_url"], body
    assert body["pull"]["status"] == "running"
    polled = await (await agent.get(body["status_url"], headers=AUTH)).json()
    assert polled["status"] == "running" and polled["pull_id"] == body["pull"]["pull_id"]
    files.release.set()

    async def ended() -> dict[str, Any] | None:
        pull: dict[str, Any] = await (await agent.get(body["status_url"], headers=AUTH)).json()
        return pull if pull["status"] != "running" else None

    pull = await until(ended, EVENTUALLY, "the pull to end")
    assert pull["status"] == "succeeded" and pull["bytes"] == len(MODEL) and pull["finished_at"]


@pytest.mark.parametrize(("body", "status", "kind", "says"), [
    ({"url": "{url}/m/none.safetensors", "folder": "checkpoints"}, 400, "ModelError", "url: HTTP 404"),
    ({"url": "ftp://x/y.safetensors", "folder": "checkpoints"}, 400, "ModelError", "a model URL is https"),
    ({"url": "{url}/m/sd15.safetensors", "folder": "nowhere"}, 400, "RequestParamsError", "not a models folder"),
    ({"url": "{url}/m/sd15.safetensors"}, 400, "RequestParamsError", "folder"),
    ({"url": "{url}/m/sd15.safetensors", "folder": "loras", "x": 1}, 400, "RequestParamsError", "x"),
])
async def test_a_bad_pull_is_refused(tmp_path: Path, agent: Client, server: tuple[ModelServer, str],
                                     body: dict[str, Any], status: int, kind: str, says: str) -> None:
    _, url = server
    sent = {key: value.format(url=url) if isinstance(value, str) else value for key, value in body.items()}
    reply = await agent.post("/api/models", json=sent, headers=AUTH)
    answer = await reply.json()
    assert reply.status == status and answer["message"] == kind, answer
    assert says in answer["error"]
    assert await models(agent) == []


async def test_a_model_is_deleted_unless_a_run_needs_it(tmp_path: Path, agent: Client,
                                                        server: tuple[ModelServer, str]) -> None:
    _, url = server
    pulled = await (await agent.post("/api/models", json={"url": f"{url}/m/sd15.safetensors",
                                                          "folder": "checkpoints"}, headers=AUTH)).json()
    name = pulled["pull"]["name"]
    key = ModelRef("", "url", "checkpoints", f"{url}/m/sd15.safetensors").key
    mark = tmp_path / "models" / ".downloads" / "checkpoints" / f"{key}.uses" / "a-run-elsewhere"
    mark.touch()
    busy = await agent.delete(f"/api/models/checkpoints/{name}", headers=AUTH)
    assert busy.status == 409 and (await busy.json())["message"] == "ModelInUse"
    mark.unlink()
    gone = await agent.delete(f"/api/models/checkpoints/{name}", headers=AUTH)
    assert gone.status == 200 and (await gone.json()) == {"deleted": f"checkpoints/{name}"}
    assert await models(agent) == []
    again = await agent.delete(f"/api/models/checkpoints/{name}", headers=AUTH)
    assert again.status == 404 and (await again.json())["message"] == "NotFound"
    escape = await agent.delete("/api/models/checkpoints/..%2F..%2Fetc%2Fpasswd", headers=AUTH)
    assert escape.status == 404


async def test_the_models_api_needs_the_token(agent: Client) -> None:
    for method, path in (("GET", "/api/models"), ("POST", "/api/models"), ("GET", "/api/pulls/x"),
                         ("DELETE", "/api/models/checkpoints/x.safetensors")):
        reply = await agent.request(method, path)
        assert reply.status == 401, (method, path)


async def test_ten_pulls_of_one_model_download_it_once(agent: Client, server: tuple[ModelServer, str]) -> None:
    files, url = server
    pulls = [asyncio.ensure_future(agent.post("/api/models", json={
        "url": f"{url}/hold/sd15.safetensors", "folder": "checkpoints"}, headers=AUTH)) for _ in range(10)]
    await asyncio.wait_for(files.held.wait(), EVENTUALLY)
    files.release.set()
    replies = await asyncio.wait_for(asyncio.gather(*pulls), EVENTUALLY)
    bodies = [await reply.json() for reply in replies]
    assert [reply.status for reply in replies] == [200] * 10, bodies
    assert len({body["pull"]["name"] for body in bodies}) == 1
    assert files.hits["/hold/sd15.safetensors"] == 1
