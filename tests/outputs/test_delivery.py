"""Runs delivering their files to a real S3 server (moto on 127.0.0.1): signed URLs with the exact bytes, keys
and names that carry the task id, nothing left behind in ComfyUI's folder, and every way it can go wrong."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from agent_harness import running_agent
from agent_process import free_port
from double_helpers import rgb, save_prompt
from s3_server import S3, store_settings

Client = TestClient[web.Request, web.Application]


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "comfyui" / "output"  # where the `double` fixture's ComfyUI writes


@pytest.fixture
async def agent(double: str, s3: S3, output_dir: Path) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, **store_settings(s3, output_dir)) as client:
        yield client


async def test_a_run_answers_signed_urls_to_the_exact_bytes_and_leaves_no_file_behind(
        agent: Client, s3: S3, output_dir: Path) -> None:
    reply = await agent.post("/api/run", json=save_prompt(0x336699, "shot"), headers={"task-id": "job-1"})
    assert reply.status == 200, await reply.text()
    body = await reply.json()
    [image] = body["2"]["images"]
    assert "results" not in body["2"]  # base64 only when asked
    assert image["filename"] == "job-1_shot_00001_.png"
    assert image["key"] == "runs/job-1/2/job-1_shot_00001_.png" and image["content_type"] == "image/png"
    got = s3.get(image["url"])
    assert got.status_code == 200 and len(got.content) == image["bytes"]
    assert Image.open(io.BytesIO(got.content)).convert("RGB").getpixel((0, 0)) == rgb(0x336699)
    assert s3.keys() == ["runs/job-1/2/job-1_shot_00001_.png"]
    assert not [path for path in output_dir.rglob("*") if path.is_file()]
    stored = await (await agent.get("/api/tasks/job-1")).json()
    assert stored["progress"]["2"]["images"] == [image]  # the task keeps the URL and key, not the blob


async def test_base64_and_none_stay_available_beside_a_store(agent: Client, s3: S3) -> None:
    as_base64 = await (await agent.post("/api/run", json={"prompt": save_prompt(1), "options": {
        "output": {"delivery": "base64"}}})).json()
    assert as_base64["2"]["results"] and "url" not in as_base64["2"]["images"][0]
    nothing = await (await agent.post("/api/run", json={"prompt": save_prompt(2), "options": {
        "output": {"delivery": "none"}}})).json()
    assert "results" not in nothing["2"] and "url" not in nothing["2"]["images"][0]
    assert s3.keys() == []


async def test_a_prefix_of_the_request_goes_under_the_stores_own(agent: Client, s3: S3) -> None:
    reply = await agent.post("/api/run", json={"prompt": save_prompt(3, "p"), "options": {
        "output": {"prefix": "team-a/2026"}}}, headers={"task-id": "job-2"})
    assert reply.status == 200, await reply.text()
    assert s3.keys() == ["runs/team-a/2026/job-2/2/job-2_p_00001_.png"]


@pytest.mark.parametrize("output", [{"prefix": "../escape"}, {"prefix": "a b"}, {"delivery": "ftp"},
                                    {"format": "gif"}, {"quality": 0}, {"quality": 101}, {"size": 1}])
async def test_bad_output_options_are_refused_before_anything_runs(agent: Client, output: dict[str, Any]) -> None:
    reply = await agent.post("/api/run", json={"prompt": save_prompt(4), "options": {"output": output}})
    assert reply.status == 400
    assert (await reply.json())["message"] == "RequestParamsError"


async def test_url_delivery_without_a_store_is_a_clear_400(double: str) -> None:
    async with running_agent(comfyui_url=double) as agent:
        reply = await agent.post("/api/run", json={"prompt": save_prompt(5), "options": {
            "output": {"delivery": "url"}}})
        assert reply.status == 400
        assert "OUTPUT_STORE" in (await reply.json())["error"]


async def test_a_store_that_refuses_fails_the_run_with_the_key_and_its_words(
        double: str, s3: S3, output_dir: Path) -> None:
    dead = S3(f"http://127.0.0.1:{free_port()}", s3.bucket)  # nothing listens there
    async with running_agent(comfyui_url=double, **store_settings(dead, output_dir)) as agent:
        reply = await agent.post("/api/run", json=save_prompt(6, "lost"), headers={"task-id": "job-3"})
        body = await reply.json()
        assert reply.status == 502 and body["message"] == "OutputUploadFailed", body
        assert body["key"] == "runs/job-3/2/job-3_lost_00001_.png" and body["store_message"]
        task = await (await agent.get("/api/tasks/job-3")).json()
        assert task["status"] == "failed" and task["error"]["message"] == "OutputUploadFailed"
    assert (output_dir / "job-3_lost_00001_.png").is_file()  # nothing uploaded, nothing removed


async def test_keep_local_outputs_keeps_comfyuis_copy(double: str, s3: S3, output_dir: Path) -> None:
    async with running_agent(comfyui_url=double, **store_settings(s3, output_dir, keep_local_outputs=True)) as agent:
        reply = await agent.post("/api/run", json=save_prompt(7, "kept"), headers={"task-id": "job-4"})
        assert reply.status == 200, await reply.text()
    assert (output_dir / "job-4_kept_00001_.png").is_file() and len(s3.keys()) == 1


async def test_webp_asked_is_webp_in_the_store_under_its_own_name(agent: Client, s3: S3) -> None:
    reply = await agent.post("/api/run", json={"prompt": save_prompt(0x102030, "w"), "options": {
        "output": {"format": "webp", "quality": 80}}}, headers={"task-id": "job-5"})
    assert reply.status == 200, await reply.text()
    [image] = (await reply.json())["2"]["images"]
    assert image["key"] == "runs/job-5/2/job-5_w_00001_.webp" and image["content_type"] == "image/webp"
    got = s3.get(image["url"]).content
    assert got[:4] == b"RIFF" and got[8:12] == b"WEBP" and len(got) == image["bytes"]
    assert Image.open(io.BytesIO(got)).format == "WEBP"


async def test_jpeg_in_base64_results_too(agent: Client) -> None:
    reply = await agent.post("/api/run", json={"prompt": save_prompt(0x405060), "options": {
        "output": {"delivery": "base64", "format": "jpeg"}}})
    data = base64.b64decode((await reply.json())["2"]["results"][0])
    assert data[:3] == b"\xff\xd8\xff" and Image.open(io.BytesIO(data)).format == "JPEG"
