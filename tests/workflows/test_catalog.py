"""The node catalog: a worker asks its ComfyUI class by class (served here from real ComfyUI 0.3.64's recorded
`/object_info`), keeps each answer a while and the last one when ComfyUI is away; a gateway reads what a worker
published to the store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.comfy.client import ComfyClient
from agent.errors import ComfyUIUnavailable, WorkflowFormatError
from agent.stores import open_store
from agent.workflows import catalog as catalog_module
from agent.workflows.catalog import LiveCatalog, StoredCatalog, api_format, list_inputs, publish_catalog
from agent_harness import serving
from recordings import recording

pytestmark = pytest.mark.timeout(30)


class Comfy:
    """`/object_info` and `/object_info/{class}` as ComfyUI answers them, counting what is asked."""

    def __init__(self) -> None:
        self.info: dict[str, Any] = recording("object_info_full")
        self.info["Newer"] = {"input": {"required": {"model": ["COMBO", {"options": ["a", "b"]}], "n": ["INT", {}]},
                                        "optional": {"model": [["optional-only"]], "extra": [["x"]]}}}
        self.info["Spaced Name (custom)"] = {"input": {"required": {"mode": [["on", "off"]]}}}
        self.asked: list[str] = []
        self.down = False

    async def one(self, request: web.Request) -> web.Response:
        name = request.match_info["node_class"]
        self.asked.append(name)
        if self.down:
            raise web.HTTPBadGateway()
        return web.json_response({name: self.info[name]} if name in self.info else {})

    async def whole(self, _: web.Request) -> web.Response:
        return web.json_response(self.info)


@pytest.fixture
async def comfy() -> AsyncIterator[tuple[Comfy, ComfyClient]]:
    served = Comfy()
    app = web.Application()
    app.router.add_get("/object_info", served.whole)
    app.router.add_get("/object_info/{node_class}", served.one)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        yield served, ComfyClient(url, session, 4)


def test_list_inputs_reads_both_forms_of_a_list_and_nothing_else() -> None:
    info = recording("object_info_full")
    assert list_inputs(info["CheckpointLoaderSimple"]) == {"ckpt_name": ["random-sd15.safetensors"]}
    assert list_inputs(info["KSampler"])["sampler_name"][:3] == ["euler", "euler_cfg_pp", "euler_ancestral"]
    assert "seed" not in list_inputs(info["KSampler"])  # an INT is no list
    newer = {"input": {"required": {"model": ["COMBO", {"options": ["a", "b"]}]},
                       "optional": {"model": [["optional-only"]], "extra": [["x"]]}}}
    assert list_inputs(newer) == {"model": ["a", "b"], "extra": ["x"]}  # COMBO's form; required wins
    assert list_inputs({"input": {"required": "not an object"}}) == {} and list_inputs(None) == {}


async def test_a_worker_asks_for_the_classes_it_needs_once_while_fresh(
        comfy: tuple[Comfy, ComfyClient], monkeypatch: pytest.MonkeyPatch) -> None:
    served, client = comfy
    catalog = LiveCatalog(client)
    found = await catalog.nodes(["KSampler", "Spaced Name (custom)", "NoSuchNode"])
    assert set(found) == {"KSampler", "Spaced Name (custom)"}  # a class ComfyUI lacks is absent
    assert await catalog.input_choices("Newer", "model") == ["a", "b"]
    await catalog.nodes(["KSampler"])
    assert sorted(served.asked) == ["KSampler", "Newer", "NoSuchNode", "Spaced Name (custom)"]
    monkeypatch.setattr(catalog_module, "FRESH_FOR", 0.0)  # every answer stale: asked again
    served.info["Newer"]["input"]["required"]["model"][1]["options"].append("c")
    assert await catalog.input_choices("Newer", "model") == ["a", "b", "c"]


async def test_with_comfyui_away_the_last_answer_serves_and_none_is_unavailable(
        comfy: tuple[Comfy, ComfyClient], monkeypatch: pytest.MonkeyPatch) -> None:
    served, client = comfy
    catalog = LiveCatalog(client)
    assert "KSampler" in await catalog.nodes(["KSampler"])
    monkeypatch.setattr(catalog_module, "FRESH_FOR", 0.0)
    served.down = True
    assert "KSampler" in await catalog.nodes(["KSampler"])
    with pytest.raises(ComfyUIUnavailable, match="could not be read"):
        await catalog.nodes(["VAEDecode"])


async def test_a_gateway_reads_the_published_catalog(comfy: tuple[Comfy, ComfyClient]) -> None:
    _, client = comfy
    store = open_store("memory://", 60, 30).shared
    with pytest.raises(ComfyUIUnavailable, match="no worker has published"):
        await StoredCatalog(store).nodes(["KSampler"])
    assert await publish_catalog(client, store) == len(recording("object_info_full")) + 2
    stored = StoredCatalog(store)
    assert set(await stored.nodes(["KSampler", "NoSuchNode"])) == {"KSampler"}
    assert await stored.input_choices("CheckpointLoaderSimple", "ckpt_name") == ["random-sd15.safetensors"]


async def test_an_api_graph_passes_as_it_is_and_an_unconvertible_one_names_its_node(
        comfy: tuple[Comfy, ComfyClient]) -> None:
    _, client = comfy
    catalog = LiveCatalog(client)
    graph = {"1": {"class_type": "KSampler", "inputs": {}}}
    assert await api_format(graph, catalog) is graph
    saved = {"nodes": [{"id": 7, "type": "Image Bloom Filter", "mode": 0, "inputs": [], "widgets_values": []}],
             "links": []}
    with pytest.raises(WorkflowFormatError) as refused:
        await api_format(saved, catalog)
    assert refused.value.extra == {"node_id": "7", "class_type": "Image Bloom Filter"}
    assert "node 7 (Image Bloom Filter)" in str(refused.value)
