"""Subgraphs flattened as the editor's "Export (API)" flattens them: built graphs for each rule (a widget value
given on the instance or kept inside, nesting, an input passed straight to an output, muted and bypassed
instances), against ComfyUI 0.3.64's recorded `/object_info`."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from agent.workflows.as_run import with_values
from agent.workflows.editor import EditorGraphError, node_classes, to_api

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
OBJECT_INFO = json.loads((FIXTURES / "comfyui-0.3.64" / "object_info_full.json").read_text())
PAIRS = FIXTURES / "editor-workflows"


def _link(link_id: int, origin: int, slot: int, target: int, target_slot: int, kind: str) -> dict[str, Any]:
    return {"id": link_id, "origin_id": origin, "origin_slot": slot, "target_id": target,
            "target_slot": target_slot, "type": kind}


PROMPT: dict[str, Any] = {  # a subgraph: CLIP and text in, the encoded conditioning out; the text is a widget inside
    "id": "prompt-sg", "name": "Prompt",
    "inputs": [{"name": "clip", "type": "CLIP", "linkIds": [1]}, {"name": "text", "type": "STRING", "linkIds": [2]}],
    "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [3]}],
    "nodes": [{"id": 1, "type": "CLIPTextEncode", "mode": 0, "widgets_values": ["kept inside"],
               "inputs": [{"name": "clip", "type": "CLIP", "link": 1},
                          {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 2}],
               "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [3]}]}],
    "links": [_link(1, -10, 0, 1, 0, "CLIP"), _link(2, -10, 1, 1, 1, "STRING"),
              _link(3, 1, 0, -20, 0, "CONDITIONING")]}


def _instance(node_id: int, kind: str, clip_link: int | None, out_links: list[int], values: list[Any],
              mode: int = 0) -> dict[str, Any]:
    return {"id": node_id, "type": kind, "mode": mode, "widgets_values": values,
            "inputs": [{"name": "clip", "type": "CLIP", "link": clip_link},
                       {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": None}],
            "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": out_links}]}


def _graph(*instances: dict[str, Any], subgraphs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A checkpoint's CLIP into the instances, their conditionings into a ConditioningCombine."""
    return {
        "nodes": [
            {"id": 4, "type": "CheckpointLoaderSimple", "mode": 0, "widgets_values": ["model.safetensors"],
             "outputs": [{"type": "MODEL", "links": []}, {"type": "CLIP", "links": [1, 2]},
                         {"type": "VAE", "links": []}]},
            *instances,
            {"id": 6, "type": "ConditioningCombine", "mode": 0,
             "inputs": [{"name": "conditioning_1", "type": "CONDITIONING", "link": 3},
                        {"name": "conditioning_2", "type": "CONDITIONING", "link": 4}]}],
        "links": [[1, 4, 1, 10, 0, "CLIP"], [2, 4, 1, 11, 0, "CLIP"], [3, 10, 0, 6, 0, "CONDITIONING"],
                  [4, 11, 0, 6, 1, "CONDITIONING"]],
        "definitions": {"subgraphs": subgraphs or [PROMPT]}}


def _encode(text: str) -> dict[str, Any]:
    return {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]},
            "_meta": {"title": "CLIP Text Encode (Prompt)"}}


def test_each_instance_becomes_its_inner_nodes_with_the_instances_widget_value_or_the_inner_one() -> None:
    graph = _graph(_instance(10, "prompt-sg", 1, [3], ["a red fox"]), _instance(11, "prompt-sg", 2, [4], []))
    prompt = to_api(graph, OBJECT_INFO)
    assert set(prompt) == {"4", "10:1", "11:1", "6"}
    assert prompt["10:1"] == _encode("a red fox")
    assert prompt["11:1"] == _encode("kept inside")
    assert prompt["6"]["inputs"] == {"conditioning_1": ["10:1", 0], "conditioning_2": ["11:1", 0]}
    assert node_classes(graph) == {"CheckpointLoaderSimple", "CLIPTextEncode", "ConditioningCombine"}


def test_a_nested_instance_takes_its_ids_from_every_instance_above_it() -> None:
    outer = {"id": "outer-sg", "name": "Outer", "inputs": PROMPT["inputs"], "outputs": PROMPT["outputs"],
             "nodes": [{**_instance(7, "prompt-sg", 1, [3], ["from the outer instance"]),
                        "inputs": [{"name": "clip", "type": "CLIP", "link": 1},
                                   {"name": "text", "type": "STRING", "widget": {"name": "text"}, "link": 2}]}],
             "links": [_link(1, -10, 0, 7, 0, "CLIP"), _link(2, -10, 1, 7, 1, "STRING"),
                       _link(3, 7, 0, -20, 0, "CONDITIONING")]}
    graph = _graph(_instance(10, "outer-sg", 1, [3], ["given at the top"]),
                   _instance(11, "prompt-sg", 2, [4], ["plain"]), subgraphs=[PROMPT, outer])
    prompt = to_api(graph, OBJECT_INFO)
    assert prompt["10:7:1"] == _encode("given at the top")
    assert prompt["6"]["inputs"]["conditioning_1"] == ["10:7:1", 0]


def test_an_input_passed_straight_to_an_output_is_the_link_outside() -> None:
    through = {"id": "through-sg", "name": "Through", "nodes": [],
               "inputs": [{"name": "conditioning", "type": "CONDITIONING", "linkIds": [1]}],
               "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "linkIds": [1]}],
               "links": [_link(1, -10, 0, -20, 0, "CONDITIONING")]}
    graph = _graph(_instance(10, "prompt-sg", 1, [5], ["a red fox"]), _instance(11, "prompt-sg", 2, [4], []),
                   {"id": 12, "type": "through-sg", "mode": 0,
                    "inputs": [{"name": "conditioning", "type": "CONDITIONING", "link": 5}],
                    "outputs": [{"name": "CONDITIONING", "type": "CONDITIONING", "links": [3]}]},
                   subgraphs=[PROMPT, through])
    graph["links"] = [[3, 12, 0, 6, 0, "CONDITIONING"] if link[0] == 3 else link for link in graph["links"]]
    graph["links"].append([5, 10, 0, 12, 0, "CONDITIONING"])
    assert to_api(graph, OBJECT_INFO)["6"]["inputs"]["conditioning_1"] == ["10:1", 0]


def test_a_muted_instance_is_left_out_with_the_inputs_it_fed_and_a_bypassed_one_passes_its_input_on() -> None:
    muted = to_api(_graph(_instance(10, "prompt-sg", 1, [3], ["a"]), _instance(11, "prompt-sg", 2, [4], ["b"],
                                                                              mode=2)), OBJECT_INFO)
    assert set(muted) == {"4", "10:1", "6"}
    assert muted["6"]["inputs"] == {"conditioning_1": ["10:1", 0]}
    graph = _graph(_instance(10, "prompt-sg", 1, [3], ["a"]), _instance(11, "prompt-sg", 2, [4], ["b"]))
    graph["nodes"][2]["inputs"].insert(0, {"name": "conditioning", "type": "CONDITIONING", "link": 5})
    graph["nodes"][2]["mode"] = 4
    graph["links"].append([5, 10, 0, 11, 0, "CONDITIONING"])
    bypassed = to_api(graph, OBJECT_INFO)
    assert set(bypassed) == {"4", "10:1", "6"}
    assert bypassed["6"]["inputs"] == {"conditioning_1": ["10:1", 0], "conditioning_2": ["10:1", 0]}


def test_a_subgraph_inside_itself_and_a_legacy_group_node_are_named() -> None:
    looped = copy.deepcopy(PROMPT)
    looped["nodes"].append(_instance(2, "prompt-sg", None, [], []))
    with pytest.raises(EditorGraphError, match="contains itself") as refused:
        to_api(_graph(_instance(10, "prompt-sg", 1, [3], []), _instance(11, "prompt-sg", 2, [4], []),
                      subgraphs=[looped]), OBJECT_INFO)
    assert refused.value.node_id == "2"
    graph = _graph(_instance(10, "workflow>Encode", 1, [3], []), _instance(11, "prompt-sg", 2, [4], []))
    with pytest.raises(EditorGraphError, match="group nodes"):
        to_api(graph, OBJECT_INFO)


def test_the_values_a_run_gave_an_instances_inputs_are_shown_on_the_instance() -> None:
    graph = _graph(_instance(10, "prompt-sg", 1, [3], ["a red fox"]), _instance(11, "prompt-sg", 2, [4], []))
    ran = to_api(graph, OBJECT_INFO)
    ran["10:1"]["inputs"]["text"] = "a grey wolf"
    shown = with_values(graph, ran, OBJECT_INFO)
    assert [node.get("widgets_values") for node in shown["nodes"] if node["id"] == 10] == [["a grey wolf"]]
    assert to_api(shown, OBJECT_INFO) == ran


def test_an_instance_keeps_its_values_at_its_legacy_proxies_in_their_order() -> None:
    """Editors of late 2025 list what an instance shows in `properties.proxyWidgets`, its values in that order:
    a subgraph input ("-1") or an inner node's widget shown without one (that instance's own value)."""
    graph = json.loads((PAIRS / "editor-promoted-widget.workflow.json").read_text())
    exported = json.loads((PAIRS / "editor-promoted-widget.api.json").read_text())
    instance = next(node for node in graph["nodes"] if node["id"] == 12)
    instance["properties"]["proxyWidgets"] = [["4", "upscale_method"], ["-1", "filename_prefix"],
                                              ["-1", "scale_by"]]
    instance["widgets_values"] = ["bilinear", "ComfyUI", 3]
    prompt = to_api(graph, OBJECT_INFO)
    exported["12:4"]["inputs"]["upscale_method"] = "bilinear"
    assert prompt == exported
    prompt["12:4"]["inputs"].update(upscale_method="area", scale_by=1.5)
    shown = with_values(graph, prompt, OBJECT_INFO)
    assert next(node for node in shown["nodes"] if node["id"] == 12)["widgets_values"] == ["area", "ComfyUI", 1.5]
    assert to_api(shown, OBJECT_INFO) == prompt


def test_comfy_orgs_own_template_converts_as_an_export_of_it() -> None:
    """The official Z-Image-Turbo template (an instance showing inner widgets through proxyWidgets, with no values
    of its own) against the catalog of the ComfyUI the image ships, and another project's export of it."""
    saved = json.loads((PAIRS / "template-z-image-turbo.workflow.json").read_text())
    exported = json.loads((PAIRS / "template-z-image-turbo.api.json").read_text())
    catalog = json.loads((FIXTURES / "comfyui-0.33.0" / "object_info_full.json").read_text())
    prompt = to_api(saved, catalog)
    assert prompt["57:3"]["inputs"].pop("seed") == 0  # the template's; the export's was drawn (`randomize`)
    del exported["57:3"]["inputs"]["seed"]
    titles = prompt["57:33"]["_meta"]["title"], exported["57:33"]["_meta"]["title"]
    assert titles == ("Conditioning Zero Out", "ConditioningZeroOut")  # the export's editor named it by class
    exported["57:33"]["_meta"] = prompt["57:33"]["_meta"]
    assert prompt == exported
