"""Save nodes' file names carry the task id, on the submitted copy only."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from agent.runs.naming import task_prefix, with_task_names
from agent_harness import running_agent


def test_the_task_id_goes_in_front_of_the_name_not_the_subfolder() -> None:
    assert task_prefix("ComfyUI", "t-1") == "t-1_ComfyUI"
    assert task_prefix("portraits/day1/shot", "t-1") == "portraits/day1/t-1_shot"
    assert task_prefix("", "t-1") == "t-1_"


def test_only_literal_prefixes_change_and_the_caller_graph_stays_as_sent() -> None:
    graph: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "a/b"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": ["4", 0]}},
        "4": {"class_type": "PrimitiveString", "inputs": {"value": "x"}},
    }
    sent = copy.deepcopy(graph)
    named = with_task_names(graph, "t-9")
    assert named["2"]["inputs"] == {"images": ["1", 0], "filename_prefix": "a/t-9_b"}
    assert named["3"] is graph["3"] and named["1"] is graph["1"]
    assert graph == sent


async def test_files_of_a_run_are_found_by_its_task_id(tmp_path: Path, double: str) -> None:
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 1}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "shots/x"}}}
    async with running_agent(comfyui_url=double) as agent:
        reply = await agent.post("/api/run", json=prompt, headers={"task-id": "job-42"})
        assert reply.status == 200, await reply.text()
        images = (await reply.json())["2"]["images"]
    assert [(image["subfolder"], image["filename"]) for image in images] == [
        ("shots", "job-42_x_00001_.png"), ("shots", "job-42_x_00002_.png")]
    assert sorted(path.name for path in (tmp_path / "comfyui" / "output").glob("**/job-42_*")) == [
        "job-42_x_00001_.png", "job-42_x_00002_.png"]
