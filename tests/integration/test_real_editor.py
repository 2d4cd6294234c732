"""Graphs saved by ComfyUI's own editor (subgraphs made in it: tests/fixtures/editor-workflows/README.md), converted
against a real ComfyUI's `/object_info` and run there; the images carry the saved graph as ComfyUI's own runs do."""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent_process import AgentProcess, real_comfyui_agent

pytestmark = pytest.mark.integration
PAIRS = Path(__file__).resolve().parents[1] / "fixtures" / "editor-workflows"


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    with real_comfyui_agent(tmp_path_factory.mktemp("editor")) as process:
        yield process


def _saved(name: str) -> dict[str, Any]:
    graph: dict[str, Any] = json.loads((PAIRS / f"{name}.workflow.json").read_text())
    return graph


def _image(body: dict[str, Any], node: str) -> Image.Image:
    image = Image.open(io.BytesIO(base64.b64decode(body[node]["results"][0])))
    image.load()
    return image


def test_nested_subgraphs_saved_by_the_editor_run_and_the_image_carries_the_graph(agent: AgentProcess) -> None:
    saved = _saved("editor-nested-subgraphs")
    response = agent.run(saved)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"1", "3", "9:8:2", "9:8:4", "9:6"}  # the API ids the editor's own export has
    image = _image(body, "3")
    assert image.size == (128, 96)  # scaled twice as big inside the inner subgraph
    assert image.convert("RGB").getpixel((3, 3)) == (128, 128, 128)  # inverted and back; the blur bypassed
    text: dict[str, str] = image.text  # type: ignore[attr-defined]
    assert json.loads(text["workflow"]) == saved
    ran, exported = json.loads(text["prompt"]), json.loads((PAIRS / "editor-nested-subgraphs.api.json").read_text())
    assert ran["3"]["inputs"].pop("filename_prefix").endswith("_nested")  # the task's id put in front
    del exported["3"]["inputs"]["filename_prefix"]
    assert ran == exported


def test_a_published_subgraph_parameter_runs_and_shows_on_the_instance(agent: AgentProcess) -> None:
    saved = _saved("editor-promoted-widget")
    published = agent.http.post("/api/workflows", json={
        "name": "promoted", "graph": saved,
        "parameters": [{"name": "scale", "type": "number", "target": "12:4.scale_by", "minimum": 0.5}]})
    assert published.status_code == 201, published.text
    response = agent.http.post("/api/workflows/promoted/run", json={"params": {"scale": 1.5}})
    assert response.status_code == 200, response.text
    image = _image(response.json(), "12:3")
    assert image.size == (96, 72)
    workflow = json.loads(image.text["workflow"])  # type: ignore[attr-defined]
    instance = next(node for node in workflow["nodes"] if node["id"] == 12)
    assert instance["widgets_values"] == [1.5, "ComfyUI"]  # as ComfyUI will open it: the run's scale
