"""Jobs through `comfy-sdk` 0.5.0 itself: every answer is parsed by the SDK's own models."""

from __future__ import annotations

import asyncio
import io
import itertools
import os
import uuid

import httpx
import pytest
from comfy_sdk import (
    AsyncComfy,
    Comfy,
    ComfyError,
    IdempotencyKeyReuse,
    InvalidWorkflow,
    JobFailed,
    MissingAsset,
    OutputReady,
    StatusChange,
)
from PIL import Image

from double_helpers import png_of, rgb, save_prompt


async def test_a_run_gives_its_outputs_as_bytes(comfy: AsyncComfy) -> None:
    job = await comfy.run(comfy.workflows.from_json(save_prompt(0x336699)))
    assert job.status == "succeeded"
    [output] = job.outputs
    assert (output.node_id, output.type, output.content_type) == ("2", "image", "image/png")
    image = Image.open(io.BytesIO(await output.to_bytes())).convert("RGB")
    assert image.getpixel((0, 0)) == rgb(0x336699)
    graph = await job.get_workflow()
    assert graph.graph == save_prompt(0x336699) and graph.format == "api"


async def test_a_failing_node_fails_the_job_with_its_node(comfy: AsyncComfy) -> None:
    with pytest.raises(JobFailed) as failed:
        await comfy.run(comfy.workflows.from_json(save_prompt(1, fault="raise")))
    assert failed.value.error is not None and failed.value.error.code == "node_execution_error"
    assert failed.value.error.node_id == "1"


async def test_a_reused_idempotency_key_makes_no_second_job(comfy: AsyncComfy) -> None:
    key = str(uuid.uuid4())
    first = await comfy.submit(comfy.workflows.from_json(save_prompt(2)), idempotency_key=key)
    with pytest.raises(IdempotencyKeyReuse):
        await comfy.submit(comfy.workflows.from_json(save_prompt(3)), idempotency_key=key)
    listed = [summary.id async for summary in comfy.list_jobs()]
    assert listed == [first.id]


async def test_events_follow_a_job_to_its_end(comfy: AsyncComfy) -> None:
    job = await comfy.submit(comfy.workflows.from_json(save_prompt(4, delay=0.5)))
    statuses = [event.status async for event in job.events() if isinstance(event, StatusChange)]
    assert statuses[-1] == "succeeded"


async def test_jobs_are_listed_newest_first_in_pages(comfy: AsyncComfy) -> None:
    made = [(await comfy.submit(comfy.workflows.from_json(save_prompt(serial)),
                                metadata={"batch": "b1", "n": str(serial)})).id for serial in range(5)]
    await comfy.submit(comfy.workflows.from_json(save_prompt(9)), metadata={"batch": "other"})
    listed = [summary async for summary in comfy.list_jobs(metadata={"batch": "b1"}, limit=2)]
    assert [summary.id for summary in listed] == made[::-1]
    assert listed[0].metadata == {"batch": "b1", "n": "4"}


def load_and_save(image: object) -> dict[str, object]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "a"}}}


async def test_an_uploaded_asset_feeds_a_run_and_a_second_upload_is_skipped_by_hash(comfy: AsyncComfy) -> None:
    data = png_of(0xCC2200)
    first = comfy.assets.from_bytes(data, filename="red.png", content_type="image/png")
    workflow = comfy.workflows.from_json(load_and_save("placeholder.png"))
    workflow.set_input("1", "image", first)
    job = await comfy.run(workflow)
    [output] = job.outputs
    assert Image.open(io.BytesIO(await output.to_bytes())).convert("RGB").getpixel((0, 0)) == rgb(0xCC2200)
    assert first.created_new is True
    second = comfy.assets.from_bytes(data, filename="again.png")
    await second.commit()
    assert second.created_new is False and second.hash == first.hash
    assert second.id is not None
    stored = await comfy.assets.get(second.id)
    assert stored.hash == first.hash
    async with httpx.AsyncClient(follow_redirects=True) as http:
        assert (await http.get((await stored.get_download_url()).url)).content == data


async def test_a_graph_comfyui_refuses_is_invalid_with_its_node_errors_and_makes_no_job(comfy: AsyncComfy) -> None:
    graph = save_prompt(5)
    del graph["2"]["inputs"]["images"]
    key = str(uuid.uuid4())
    with pytest.raises(InvalidWorkflow) as refused:
        await comfy.submit(comfy.workflows.from_json(graph), idempotency_key=key)
    assert set((refused.value.details or {})["node_errors"]) == {"2"}
    assert [summary async for summary in comfy.list_jobs()] == []
    job = await comfy.submit(comfy.workflows.from_json(save_prompt(6)), idempotency_key=key)  # the key is free
    assert (await job.result()).status == "succeeded"


async def test_an_editor_graph_and_an_unknown_asset_are_refused_before_anything_runs(comfy: AsyncComfy) -> None:
    with pytest.raises(MissingAsset) as missing:
        await comfy.submit(comfy.workflows.from_json(load_and_save(
            {"__type": "core/ASSET", "info": {"id": str(uuid.uuid4())}})))
    assert len((missing.value.details or {})["missing_ids"]) == 1
    with pytest.raises(ComfyError) as unknown:
        await comfy.jobs.get(str(uuid.uuid4()))
    assert unknown.value.code == "not_found"
    assert [summary async for summary in comfy.list_jobs()] == []


async def test_cancel_stops_a_running_job_and_is_refused_once_it_ended(comfy: AsyncComfy) -> None:
    job = await comfy.submit(comfy.workflows.from_json(save_prompt(7, delay=30)))
    async for event in job.events():
        if isinstance(event, StatusChange) and event.status == "running":
            break
    await job.cancel()
    assert job.status in ("canceling", "canceled")
    with pytest.raises(JobFailed):
        await job.result()
    assert job.status == "canceled"
    with pytest.raises(ComfyError) as finished:
        await job.cancel()
    assert (finished.value.code, finished.value.http_status) == ("job_finished", 409)


async def test_the_synchronous_client_runs_lists_and_reads_too(comfy: AsyncComfy) -> None:
    """`Comfy`, the SDK's blocking client, in a thread (this test's event loop serves the agent)."""

    def with_the_blocking_client() -> tuple[str, bytes, list[str]]:
        with Comfy() as blocking:  # the same COMFY_BASE_URL as the fixture's client
            job = blocking.run(blocking.workflows.from_json(save_prompt(0x0A0B0C)))
            return job.status, job.outputs[0].to_bytes(), [summary.id for summary in blocking.list_jobs()]

    status, data, listed = await asyncio.to_thread(with_the_blocking_client)
    assert status == "succeeded" and listed and len(listed) == 1
    assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0)) == rgb(0x0A0B0C)


async def test_a_short_jobs_stream_tells_each_status_once_then_its_outputs_and_its_end(comfy: AsyncComfy) -> None:
    """A short job's log is written at its end in one go: what is past by then (its intermediate states) is not
    told, and no status is told twice."""
    job = await comfy.submit(comfy.workflows.from_json(save_prompt(11)))
    events = [event async for event in job.events()]
    statuses = [event.status for event in events if isinstance(event, StatusChange)]
    assert statuses[-1] == "succeeded" and all(one != two for one, two in itertools.pairwise(statuses))
    outputs = [event for event in events if isinstance(event, OutputReady)]
    assert len(outputs) == 1 and events.index(outputs[0]) == len(events) - 2
    await job.refresh()
    assert outputs[0].output.id == job.outputs[0].id


async def test_an_outputs_bytes_are_served_in_ranges(comfy: AsyncComfy) -> None:
    job = await comfy.run(comfy.workflows.from_json(save_prompt(12)))
    whole = await job.outputs[0].to_bytes()
    assert await job.outputs[0].to_bytes(range=(0, 4)) == whole[:5]
    assert await job.outputs[0].to_bytes(range=(5, len(whole) - 1)) == whole[5:]
    async with httpx.AsyncClient() as client:
        url = f"{os.environ['COMFY_BASE_URL']}/api/v2/assets/{job.outputs[0].id}/content"
        beyond = await client.get(url, headers={"Range": f"bytes={len(whole) + 10}-"})
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{len(whole)}"
