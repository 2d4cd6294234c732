"""Comfy's own SDK (`comfy-sdk`) against the agent launching real ComfyUI: a job's outputs as bytes, an asset
uploaded once and skipped by hash the second time, events, cancel, jobs listed in pages, a reused idempotency key
refused with no second job, and a graph ComfyUI refuses answered with its node errors."""

from __future__ import annotations

import io
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from comfy_sdk import AsyncComfy, IdempotencyKeyReuse, InvalidWorkflow, JobFailed, StatusChange
from PIL import Image

from agent_process import AgentProcess, real_comfyui_agent
from double_helpers import png_of

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    with real_comfyui_agent(tmp_path_factory.mktemp("real-v2")) as process:
        yield process


@pytest.fixture
async def comfy(agent: AgentProcess, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[AsyncComfy]:
    monkeypatch.setenv("COMFY_BASE_URL", agent.url)
    monkeypatch.delenv("COMFY_API_KEY", raising=False)
    async with AsyncComfy(timeout=120) as client:
        yield client


def saved(source: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {"1": source, "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def empty(color: int) -> dict[str, Any]:
    return {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 1, "color": color}}


def slow() -> dict[str, Any]:
    """Seconds of work without a model: an image scaled up to 4096 squared, with lanczos, a few times."""
    graph: dict[str, Any] = {"1": empty(0x202020)}
    for node in range(2, 6):
        graph[str(node)] = {"class_type": "ImageScale", "inputs": {
            "image": [str(node - 1), 0], "upscale_method": "lanczos", "width": 4096 - node, "height": 4096,
            "crop": "disabled"}}
    graph["9"] = {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}}
    return graph


async def test_a_job_s_output_reads_as_bytes_and_an_asset_is_uploaded_once(comfy: AsyncComfy) -> None:
    data = png_of(0x33CC66)
    workflow = comfy.workflows.from_json(saved({"class_type": "LoadImage", "inputs": {"image": "x.png"}}, "v2a"))
    workflow.set_input("1", "image", comfy.assets.from_bytes(data, filename="green.png"))
    job = await comfy.run(workflow)
    [output] = job.outputs
    assert Image.open(io.BytesIO(await output.to_bytes())).convert("RGB").getpixel((0, 0)) == (0x33, 0xCC, 0x66)
    again = comfy.assets.from_bytes(data, filename="again.png")
    await again.commit()
    assert again.created_new is False


async def test_events_cancel_and_pages(comfy: AsyncComfy) -> None:
    done = [await comfy.run(comfy.workflows.from_json(saved(empty(serial), "v2p"))) for serial in range(3)]
    job = await comfy.submit(comfy.workflows.from_json(slow()))
    async for event in job.events():
        if isinstance(event, StatusChange) and event.status == "running":
            break
    await job.cancel()
    with pytest.raises(JobFailed):
        await job.result()
    assert job.status == "canceled"
    listed = [summary.id async for summary in comfy.list_jobs(limit=2)]
    assert listed[:4] == [job.id, *(finished.id for finished in reversed(done))]


async def test_a_reused_key_and_a_refused_graph_make_no_job(comfy: AsyncComfy) -> None:
    key = str(uuid.uuid4())
    first = await comfy.submit(comfy.workflows.from_json(saved(empty(0x010203), "v2k")), idempotency_key=key)
    with pytest.raises(IdempotencyKeyReuse):
        await comfy.submit(comfy.workflows.from_json(saved(empty(0x040506), "v2k")), idempotency_key=key)
    broken = saved(empty(0x070809), "v2r")
    del broken["2"]["inputs"]["images"]
    with pytest.raises(InvalidWorkflow) as refused:
        await comfy.submit(comfy.workflows.from_json(broken))
    assert "2" in (refused.value.details or {})["node_errors"]
    newest = [summary.id async for summary in comfy.list_jobs(limit=1)][:1]
    assert newest == [first.id]
