"""/api/jobs where no recording goes: filters by workflow and by an empty status list, as ComfyUI 0.33.0's
comfy_execution/jobs.py reads them; 0.3.64 has no such route."""

from __future__ import annotations

from typing import Any

from comfy_double.harness import MakeDouble


def prompt_of(workflow: str) -> dict[str, Any]:
    graph = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}},
             "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": workflow}}}
    return {"prompt": graph, "extra_data": {"extra_pnginfo": {"workflow": {"id": workflow}}}}


async def test_jobs_filter_by_workflow_and_status(make_double: MakeDouble) -> None:
    double = await make_double(version="0.33.0")
    ids = {}
    for workflow in ("wf-a", "wf-b"):
        _, reply = await double.request("POST", "/prompt", json=prompt_of(workflow))
        ids[workflow] = reply["prompt_id"]
        await double.wait_history(reply["prompt_id"])
    _, only_a = await double.request("GET", "/api/jobs?workflow_id=wf-a")
    assert [job["id"] for job in only_a["jobs"]] == [ids["wf-a"]] and only_a["jobs"][0]["workflow_id"] == "wf-a"
    _, every = await double.request("GET", "/api/jobs?status=")
    assert {job["id"] for job in every["jobs"]} == set(ids.values())
    _, none = await double.request("GET", "/api/jobs?status=,")
    assert none == {"jobs": [], "pagination": {"offset": 0, "limit": None, "total": 0, "has_more": False}}


async def test_0_3_64_has_no_jobs_route(make_double: MakeDouble) -> None:
    double = await make_double()
    assert (await double.request("GET", "/api/jobs"))[0] == 404
