"""The editor's saved format converted as the editor's own "Export (API)" converts it: pairs of both files for one
graph, from public sources (tests/fixtures/editor-workflows/README.md), against ComfyUI 0.3.64's recorded
`/object_info`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.workflows.as_run import with_values
from agent.workflows.definition import discover
from agent.workflows.editor import EditorGraphError, is_editor_graph, to_api

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
PAIRS = FIXTURES / "editor-workflows"
OBJECT_INFO = json.loads((FIXTURES / "comfyui-0.3.64" / "object_info_full.json").read_text())
CORE_ONLY = sorted(path.name.removesuffix(".workflow.json") for path in PAIRS.glob("*.workflow.json")
                   if path.name != "reroute-was-bloom.workflow.json")  # that one needs a custom node
EXACT = [name for name in CORE_ONLY if name != "template-z-image-turbo"]  # known differences: test_editor_subgraphs


def _load(name: str, kind: str) -> Any:
    return json.loads((PAIRS / f"{name}.{kind}.json").read_text())


def _as_exported(expected: dict[str, Any], got: dict[str, Any]) -> dict[str, Any]:
    """What differs in the older sources only, not in the conversion: prompts read out of example PNGs carry the
    server's `is_changed`, predate `_meta`, and their old editor sent LoadImage's upload button as an input."""
    seen = {}
    for node_id, node in got.items():
        original = expected.get(node_id, {})
        inputs = dict(node["inputs"])
        if "choose file to upload" in original.get("inputs", {}):
            inputs["choose file to upload"] = original["inputs"]["choose file to upload"]
        seen[node_id] = {**node, "inputs": inputs, **({"is_changed": original["is_changed"]}
                                                       if "is_changed" in original else {})}
        if "_meta" not in original:
            del seen[node_id]["_meta"]
    return seen


@pytest.mark.parametrize("name", EXACT)
def test_a_saved_graph_converts_to_its_api_export(name: str) -> None:
    saved, exported = _load(name, "workflow"), _load(name, "api")
    assert is_editor_graph(saved) and not is_editor_graph(exported)
    converted = to_api(saved, OBJECT_INFO)
    assert _as_exported(exported, converted) == exported


@pytest.mark.parametrize("name", CORE_ONLY)
def test_the_saved_graph_takes_the_values_a_run_used_and_converts_back_to_them(name: str) -> None:
    saved = _load(name, "workflow")
    ran = to_api(saved, OBJECT_INFO)
    changed = 0
    for node in ran.values():  # every value a widget (or a primitive) holds, changed
        for input_name, value in node["inputs"].items():
            if isinstance(value, str):
                node["inputs"][input_name], changed = value + " (ran)", changed + 1
            elif isinstance(value, int | float) and not isinstance(value, bool):
                node["inputs"][input_name], changed = value + 1, changed + 1
    assert changed
    shown = with_values(saved, ran, OBJECT_INFO)
    assert _load(name, "workflow") == saved  # a copy: the saved graph is left as it was
    assert to_api(shown, OBJECT_INFO) == ran


def test_a_widget_the_save_predates_takes_its_default_as_the_editor_gives_it() -> None:
    saved = _load("default-t2i-sd15", "workflow")
    sampler = next(node for node in saved["nodes"] if node["type"] == "KSampler")
    sampler["widgets_values"] = sampler["widgets_values"][:4]  # seed, its control, steps, cfg
    inputs = to_api(saved, OBJECT_INFO)[str(sampler["id"])]["inputs"]
    spec = OBJECT_INFO["KSampler"]["input"]["required"]
    assert (inputs["sampler_name"], inputs["scheduler"]) == (spec["sampler_name"][0][0], spec["scheduler"][0][0])
    assert inputs["denoise"] == spec["denoise"][1]["default"] == 1.0
    assert inputs["steps"] == sampler["widgets_values"][2]


def test_a_node_this_comfyui_lacks_is_named() -> None:
    with pytest.raises(EditorGraphError) as refused:
        to_api(_load("reroute-was-bloom", "workflow"), OBJECT_INFO)
    assert (refused.value.node_id, refused.value.class_type) == ("23", "Image Bloom Filter")


def test_a_link_to_a_missing_node_and_a_circle_of_reroutes_are_named() -> None:
    saved = _load("default-t2i-sd15", "workflow")
    saved["links"] = [[link[0], 99, *link[2:]] if link[0] == 1 else link for link in saved["links"]]
    with pytest.raises(EditorGraphError, match="node 99, which is not in the graph"):
        to_api(saved, OBJECT_INFO)
    circle = {"nodes": [
        {"id": 1, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 2}], "outputs": [{"links": [1]}]},
        {"id": 2, "type": "Reroute", "inputs": [{"name": "", "type": "*", "link": 1}], "outputs": [{"links": [2]}]},
        {"id": 3, "type": "PreviewImage", "inputs": [{"name": "images", "type": "IMAGE", "link": 3}]}],
        "links": [[1, 1, 0, 2, 0, "*"], [2, 2, 0, 1, 0, "*"], [3, 1, 0, 3, 0, "IMAGE"]]}
    with pytest.raises(EditorGraphError, match="circle"):
        to_api(circle, OBJECT_INFO)


def test_the_parameters_proposed_for_a_saved_flux_graph_name_its_prompt_and_models() -> None:
    """What publishing proposes for a graph that declares nothing: the prompt by what it feeds, every model
    picker listing what ComfyUI has, the LoRA's strength, the latent's size."""
    proposed = {parameter.name: parameter for parameter in discover(
        to_api(_load("flux-dev-checkpoint-note", "workflow"), OBJECT_INFO))}
    exported = _load("flux-dev-checkpoint-note", "api")
    prompt = next(node for node, spec in exported.items() if spec["class_type"] == "KSampler")
    positive = exported[prompt]["inputs"]["positive"][0]
    assert exported[positive]["class_type"] == "FluxGuidance"  # the prompt is found through it
    encoder = exported[positive]["inputs"]["conditioning"][0]
    assert proposed[f"{encoder}_text"].title == "Prompt"
    pickers = {parameter.choices_from for parameter in proposed.values() if parameter.type == "enum"}
    assert {"CheckpointLoaderSimple.ckpt_name", "LoraLoader.lora_name", "VAELoader.vae_name",
            "DualCLIPLoader.clip_name1"} <= pickers
    assert any(parameter.title.endswith(": LoRA strength") for parameter in proposed.values())
    assert {parameter.title.rpartition(": ")[2] for parameter in proposed.values()} >= {"Width", "Height", "Seed"}
