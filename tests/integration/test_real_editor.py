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
from playwright.async_api import async_playwright

from agent_process import AgentProcess, real_comfyui_agent
from waiting import EVENTUALLY
from web.conftest import CHROMIUM, FLAGS

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


@pytest.mark.parametrize(("name", "output", "size"), [("editor-nested-subgraphs", "3", (128, 96)),
                                                     ("editor-reroute-primitive", "5", (32, 24)),
                                                     ("editor-promoted-widget", "12:3", (192, 144))])
def test_graphs_saved_by_the_editor_run_as_exported_and_the_image_carries_the_graph(
        agent: AgentProcess, name: str, output: str, size: tuple[int, int]) -> None:
    saved = _saved(name)
    response = agent.run(saved)
    assert response.status_code == 200, response.text
    exported = json.loads((PAIRS / f"{name}.api.json").read_text())
    assert set(response.json()) == set(exported)  # the API ids the editor's own export has
    image = _image(response.json(), output)
    assert image.size == size
    text: dict[str, str] = image.text  # type: ignore[attr-defined]
    assert json.loads(text["workflow"]) == saved
    ran = json.loads(text["prompt"])
    for node_id, node in exported.items():  # the agent puts the task's id in front of each file name
        prefix = node["inputs"].get("filename_prefix")
        if isinstance(prefix, str):
            assert ran[node_id]["inputs"].pop("filename_prefix").endswith(f"_{prefix}")
            del node["inputs"]["filename_prefix"]
    assert ran == exported


def test_nested_subgraphs_pass_the_image_through_as_the_editor_wired_it(agent: AgentProcess) -> None:
    image = _image(agent.run(_saved("editor-nested-subgraphs")).json(), "3")
    assert image.convert("RGB").getpixel((3, 3)) == (128, 128, 128)  # inverted and back; the blur bypassed


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


OPEN_IN_EDITOR = """async (png) => {
  const bytes = Uint8Array.from(atob(png), (c) => c.charCodeAt(0));
  await window.app.handleFile(new File([bytes], "made.png", {type: "image/png"}));
  return window.app.graph.serialize();
}"""


def _shape(graph: dict[str, Any]) -> dict[str, Any]:
    """What a graph is, its layout aside: each node's id, class, mode and values, at the top and in each subgraph."""
    def nodes(found: dict[str, Any]) -> list[tuple[Any, ...]]:
        return sorted((node["id"], node["type"], node.get("mode", 0), json.dumps(node.get("widgets_values") or []))
                      for node in found.get("nodes") or [])

    subgraphs = (graph.get("definitions") or {}).get("subgraphs") or []
    return {"nodes": nodes(graph), **{subgraph["id"]: nodes(subgraph) for subgraph in subgraphs}}


async def test_an_image_dropped_on_comfyuis_own_editor_opens_the_graph_it_was_made_from(
        agent: AgentProcess) -> None:
    """ComfyUI's own editor (the one this ComfyUI serves), given the PNG the agent returned, opens the saved graph
    with its subgraphs, as it does for a PNG of its own."""
    if not Path(CHROMIUM).is_file():
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    saved = _saved("editor-nested-subgraphs")
    png = base64.b64decode(agent.run(saved).json()["3"]["results"][0])
    assert agent.comfyui_url is not None
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = await browser.new_page()
            await page.goto(agent.comfyui_url + "/")
            await page.wait_for_function("() => !!window.app?.canvas?.graph", polling=500,
                                         timeout=EVENTUALLY * 1000)
            opened = await page.evaluate(OPEN_IN_EDITOR, base64.b64encode(png).decode())
        finally:
            await browser.close()
    assert _shape(opened) == _shape(saved)
