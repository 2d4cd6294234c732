"""Outputs that are not still images, and outputs the agent cannot find on disk: animations stay as they are
whatever format was asked, any list a node reports files in is delivered, and `/view` is streamed."""

from __future__ import annotations

import io
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from agent.buckets.clients import Buckets
from agent.buckets.location import parse_location
from agent.comfy.client import ComfyClient
from agent.comfy.outputs import ComfyFiles
from agent.config import Settings
from agent.outputs.delivery import OutputStore
from agent.tasks.model import ImageRef
from agent.tasks.options import RunOptions
from agent.tasks.progress import files_in
from agent_harness import running_agent
from files_server import wav
from s3_server import S3, store_settings

Client = TestClient[web.Request, web.Application]


def animation(prefix: str, frames: int = 3) -> dict[str, Any]:
    """The double's sampler colours each image of a batch apart, so the WebP has a frame for each."""
    clip = ["4", 1]
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "random-sd15.safetensors"}},
        "5": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 48, "batch_size": frames}},
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": "waves", "clip": clip}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": clip}},
        "3": {"class_type": "KSampler", "inputs": {"seed": 5, "steps": 2, "cfg": 7, "sampler_name": "euler",
                                                   "scheduler": "normal", "denoise": 1, "model": ["4", 0],
                                                   "positive": ["6", 0], "negative": ["7", 0],
                                                   "latent_image": ["5", 0]}},
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "2": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["8", 0], "filename_prefix": prefix, "fps": 6.0,
                                                           "lossless": True, "quality": 80, "method": "default"}},
    }


@pytest.fixture
async def agent(double: str, s3: S3, tmp_path: Path) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, **store_settings(s3, tmp_path / "comfyui" / "output")) as client:
        yield client


async def test_an_animation_asked_as_png_stays_an_animation_and_the_task_keeps_its_url(
        agent: Client, s3: S3) -> None:
    reply = await agent.post("/api/run", json={"prompt": animation("anim"), "options": {
        "output": {"format": "png"}}}, headers={"task-id": "anim-1"})
    assert reply.status == 200, await reply.text()
    [image] = (await reply.json())["2"]["images"]
    assert image["key"] == "runs/anim-1/2/anim-1_anim_00001_.webp" and image["content_type"] == "image/webp"
    stored = Image.open(io.BytesIO(s3.get(image["url"]).content))
    assert stored.format == "WEBP" and getattr(stored, "n_frames", 1) == 3
    task = await (await agent.get("/api/tasks/anim-1")).json()
    output = task["outputs"]["2"]
    assert output["animated"] == [True] and output["images"][0]["url"] == image["url"]


async def test_a_file_the_agent_cannot_find_on_disk_is_streamed_from_view(double: str, s3: S3,
                                                                          tmp_path: Path) -> None:
    elsewhere = tmp_path / "not-comfyuis-folder"
    async with running_agent(comfyui_url=double, **store_settings(s3, elsewhere)) as agent:
        reply = await agent.post("/api/run", json={"prompt": animation("far", frames=6)},
                                 headers={"task-id": "far-1"})
        assert reply.status == 200, await reply.text()
        [image] = (await reply.json())["2"]["images"]
    written = (tmp_path / "comfyui" / "output" / "far-1_far_00001_.webp").read_bytes()
    assert s3.get(image["url"]).content == written and image["bytes"] == len(written)


async def test_a_big_file_from_view_goes_up_in_parts_with_its_exact_bytes(double: str, s3: S3,
                                                                          tmp_path: Path) -> None:
    """Larger than a part (5 MiB): the stream from ComfyUI becomes a multipart upload, never one buffer."""
    video = os.urandom(11 << 20)
    (tmp_path / "comfyui" / "output" / "clip_00001_.mp4").write_bytes(video)
    reported = {"images": [{"filename": "clip_00001_.mp4", "subfolder": "", "type": "output"}], "animated": [True]}
    [stored] = (await _deliver(s3, double, {}, reported)).values()
    assert stored.content_type == "video/mp4" and stored.bytes == len(video)
    assert s3.get(str(stored.url)).content == video


async def _deliver(s3: S3, comfyui_url: str, folders: dict[str, Path],
                   reported: dict[str, Any]) -> dict[tuple[str, str, str], ImageRef]:
    """One node's report delivered to the bucket, under the task `t-9` and node `7`."""
    settings = Settings(comfyui_url=comfyui_url, **store_settings(s3, Path("unused")))
    location = parse_location(f"s3://{s3.bucket}/runs")
    bucket = Buckets.from_settings(settings.buckets, {}).bucket("s3", s3.bucket)
    outputs = OutputStore(bucket, location, keep_local=False)
    async with aiohttp.ClientSession() as session:
        files = ComfyFiles(ComfyClient(comfyui_url, session, 4), folders)
        delivery = outputs.delivery(files, "t-9", RunOptions(format="webp"))
        delivery.start("7", files_in(reported))
        return await delivery.finished()


async def test_every_list_a_node_reports_files_in_is_delivered_unconverted(s3: S3, tmp_path: Path) -> None:
    """SaveAudio's `audio`, VHS's `gifs`, SaveGLB's `3d`: entries that name a file, whatever the list."""
    output_dir = tmp_path / "output"
    (output_dir / "audio").mkdir(parents=True)
    sound, model = wav(4000, b"\1\0"), b"glTF" + bytes(64)
    (output_dir / "audio" / "t_00001_.flac").write_bytes(sound)
    (output_dir / "mesh_00001_.glb").write_bytes(model)
    reported = {"audio": [{"filename": "t_00001_.flac", "subfolder": "audio", "type": "output"}],
                "3d": [{"filename": "mesh_00001_.glb", "subfolder": "", "type": "output"}], "text": ["hello"]}
    stored = await _deliver(s3, "http://127.0.0.1:9", {"output": output_dir}, reported)  # nothing asks ComfyUI
    by_name = {place[2]: ref for place, ref in stored.items()}
    assert by_name["t_00001_.flac"].content_type == "audio/flac"
    assert by_name["mesh_00001_.glb"].content_type == "model/gltf-binary"
    assert s3.get(str(by_name["t_00001_.flac"].url)).content == sound
    assert s3.get(str(by_name["mesh_00001_.glb"].url)).content == model
    assert s3.keys() == ["runs/t-9/7/mesh_00001_.glb", "runs/t-9/7/t_00001_.flac"]
    assert not [path for path in output_dir.rglob("*") if path.is_file()]
