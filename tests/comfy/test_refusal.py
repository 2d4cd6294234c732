"""ComfyUI's refusals of a prompt, in a line that leads with each node's own problem, over every 400 recorded from
ComfyUI 0.3.64."""

from __future__ import annotations

from typing import Any

import pytest

from agent.comfy.client import PromptRejected
from recordings import http_calls

REFUSALS = [call for call in http_calls("validation_errors", "POST", "/prompt") if call["status"] == 400]


@pytest.mark.parametrize("call", REFUSALS, ids=[call["label"] for call in REFUSALS])
def test_the_summary_names_every_node_and_its_own_message(call: dict[str, Any]) -> None:
    body = call["body"]
    summary = PromptRejected(body).summary()
    assert "Prompt outputs failed validation" not in summary
    for node, entry in body["node_errors"].items():
        assert f"{entry['class_type']} (node {node})" in summary
        for error in entry["errors"]:
            assert error["message"] in summary and str(error["details"]) in summary
    if not body["node_errors"]:
        assert body["error"]["message"] in summary


def test_a_value_not_in_the_list_reads_as_one_line() -> None:
    body = next(call["body"] for call in REFUSALS if call["label"] == "checkpoint_not_found")
    assert PromptRejected(body).summary() == ("CheckpointLoaderSimple (node 1): Value not in list: ckpt_name: "
                                              "'nope.safetensors' not in ['random-sd15.safetensors']")


def test_a_bad_number_names_its_input_first() -> None:
    body = next(call["body"] for call in REFUSALS if call["label"] == "value_below_min")
    assert PromptRejected(body).summary() == "EmptyImage (node 1): width: Value 0 smaller than min of 1"
