"""The README's examples work as written: every file they post is in the repository and runs, every workflow they
name exists, and its first screen says what the service is for."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sync_docs import README, REPO

Client = TestClient[web.Request, web.Application]
TEXT = README.read_text()
POSTED = sorted(set(re.findall(r"-d @([\w./-]+)", TEXT)) | set(re.findall(r"comfyui-agent run ([\w./-]+\.json)", TEXT)))
PUBLISHED = sorted(set(re.findall(r"comfyui-agent workflows publish ([\w./-]+) --name ([a-z0-9_-]+)", TEXT)))
WORKFLOWS = sorted(set(re.findall(r"/api/workflows/([a-z0-9_-]+)/run", TEXT)) - {name for _, name in PUBLISHED})


def test_the_examples_post_files_and_name_workflows() -> None:
    assert POSTED and WORKFLOWS and PUBLISHED


@pytest.mark.parametrize("name", POSTED)
async def test_each_posted_file_is_shipped_and_runs(agent: Client, name: str) -> None:
    path = REPO / name
    assert path.is_file(), f"the README posts {name}, which the repository does not have"
    response = await agent.post("/api/run", data=path.read_bytes(), headers={"Content-Type": "application/json"})
    assert response.status == 200, await response.text()
    assert all(node.get("images") is not None for node in (await response.json()).values())


@pytest.mark.parametrize("name", WORKFLOWS)
async def test_each_named_workflow_exists(agent: Client, name: str) -> None:
    assert (await agent.get(f"/api/workflows/{name}")).status == 200


@pytest.mark.parametrize(("path", "name"), PUBLISHED)
async def test_each_published_file_publishes_and_runs(agent: Client, path: str, name: str) -> None:
    graph = json.loads((REPO / path).read_text())
    published = await agent.post("/api/workflows", json={"name": name, "graph": graph})
    assert published.status == 201, await published.text()
    response = await agent.post(f"/api/workflows/{name}/run", json={})
    assert response.status == 200, await response.text()


def test_the_first_screen_says_what_the_service_is_for() -> None:
    before_the_commands = TEXT[:TEXT.index("```")]
    assert "API" in before_the_commands and "ComfyUI" in before_the_commands
    assert "Function Compute" in before_the_commands
    assert len(before_the_commands.splitlines()) <= 8  # the commands stay on the first screen


def test_the_example_graph_needs_no_model() -> None:
    graph = json.loads(Path(REPO / "docs/examples/hello.json").read_text())
    assert not [node for node in graph.values() if "Loader" in node["class_type"]]
