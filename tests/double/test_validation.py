"""Validation beyond the 19 recorded cases (those are replayed in test_conformance_runs): ComfyUI's rules
and quirks that a client can run into."""

from __future__ import annotations

from typing import Any

import pytest

from comfy_double.harness import DoubleClient

SERVER_TROUBLE = "500 Internal Server Error\n\nServer got itself in trouble"


def empty(width: object = 8) -> dict[str, Any]:
    return {"class_type": "EmptyImage", "inputs": {"width": width, "height": 8, "batch_size": 1, "color": 0}}


def save(source: str, prefix: str | None = "v") -> dict[str, Any]:
    inputs: dict[str, Any] = {"images": [source, 0]} | ({"filename_prefix": prefix} if prefix else {})
    return {"class_type": "SaveImage", "inputs": inputs}


async def test_literals_are_converted_in_the_queued_prompt(double: DoubleClient) -> None:
    status, reply = await double.post_prompt({"prompt": {"1": empty("16"), "2": save("1")}})
    assert status == 200
    entry = await double.wait_history(reply["prompt_id"])
    assert entry["prompt"][2]["1"]["inputs"]["width"] == 16


async def test_a_class_the_double_does_not_implement_does_not_exist(double: DoubleClient) -> None:
    status, reply = await double.post_prompt({"prompt": {"1": {"class_type": "UpscaleModelLoader", "inputs": {}}}})
    assert status == 400
    assert reply["error"]["message"] == "Cannot execute because node UpscaleModelLoader does not exist."


async def test_an_exception_in_an_upstream_node_is_reported_on_that_node(double: DoubleClient) -> None:
    prompt = {"1": {"class_type": "ImageInvert", "inputs": {"image": ["99", 0]}}, "2": save("1")}
    status, reply = await double.post_prompt({"prompt": prompt})
    error = reply["node_errors"]["1"]["errors"][0]
    assert (status, reply["error"]["details"], error["type"]) == (400, "", "exception_during_inner_validation")
    extra = {k: v for k, v in error["extra_info"].items() if k != "traceback"}
    assert extra == {
        "input_name": "images",
        "input_config": ["IMAGE", {"tooltip": "The images to save."}],
        "exception_message": "'99'",
        "exception_type": "KeyError",
        "linked_node": ["1", 0],
    }


async def test_an_earlier_failure_collects_every_later_failing_output(double: DoubleClient) -> None:
    """ComfyUI appends each failing output to every invalid node validated so far, related or not."""
    prompt = {"1": empty(0), "2": save("1"), "3": empty(), "4": save("3", prefix=None)}
    _, reply = await double.post_prompt({"prompt": prompt})
    dependents = {node: errors["dependent_outputs"] for node, errors in reply["node_errors"].items()}
    assert dependents == {"1": ["2", "4"], "4": ["4"]}
    assert reply["error"]["details"] == "Required input is missing: filename_prefix"


async def test_partial_execution_targets_limit_the_outputs(double: DoubleClient) -> None:
    client = await double.ws("partial")
    prompt = {"1": empty(), "2": save("1", "left"), "3": save("1", "right")}
    body = {"prompt": prompt, "client_id": "partial", "partial_execution_targets": ["3"]}
    _, reply = await double.post_prompt(body)
    await client.wait_done(reply["prompt_id"])
    entry = await double.wait_history(reply["prompt_id"])
    assert (entry["prompt"][4], list(entry["outputs"])) == (["3"], ["3"])


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"prompt": "abc"}, 500),
        ({"prompt": 5}, 500),
        ({"prompt": {"1": 7}}, 500),
        ({"prompt": {"1": "text"}}, 400),  # 'class_type' not in "text": a node without class_type
        (5, 500),
        ([], 400),  # "prompt" not in []: no_prompt
    ],
)
async def test_odd_bodies_fail_where_comfyui_fails(double: DoubleClient, body: object, status: int) -> None:
    code, reply = await double.post_prompt(body)
    assert code == status
    assert reply == SERVER_TROUBLE if status == 500 else reply["node_errors"] == {}
