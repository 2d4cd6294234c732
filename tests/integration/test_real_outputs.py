"""Real ComfyUI's videos and animations delivered to a real S3 server (moto on 127.0.0.1): SaveVideo reports its
MP4 under `images`, and it must go up as a video, unconverted, and leave ComfyUI's folder."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agent_process import AgentProcess, real_comfyui_agent

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def bucket(s3_endpoint: str) -> str:
    name = f"real-{uuid.uuid4().hex[:8]}"
    httpx.put(f"{s3_endpoint}/{name}", timeout=10).raise_for_status()
    return name


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory, s3_endpoint: str, bucket: str) -> Iterator[AgentProcess]:
    with real_comfyui_agent(tmp_path_factory.mktemp("real-outputs"), OUTPUT_STORE=f"s3://{bucket}/runs",
                            OUTPUT_STORE_ENDPOINT=s3_endpoint, OUTPUT_STORE_ACCESS_KEY_ID="test-key",
                            OUTPUT_STORE_ACCESS_KEY_SECRET="test-secret") as process:
        yield process


def frames(then: dict[str, Any]) -> dict[str, Any]:
    return {"1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 3,
                                                         "color": 0x3366AA}}, **then}


def test_a_video_goes_up_as_an_mp4_and_leaves_comfyuis_folder(agent: AgentProcess) -> None:
    prompt = frames({
        "2": {"class_type": "CreateVideo", "inputs": {"images": ["1", 0], "fps": 8.0}},
        "3": {"class_type": "SaveVideo", "inputs": {"video": ["2", 0], "filename_prefix": "video/vid",
                                                    "format": "auto", "codec": "auto"}},
    })
    response = agent.run(prompt, headers={"task-id": "real-video-1"})
    assert response.status_code == 200, response.text
    [video] = response.json()["3"]["images"]
    assert video["filename"] == "real-video-1_vid_00001_.mp4" and video["subfolder"] == "video"
    assert video["key"] == "runs/real-video-1/3/real-video-1_vid_00001_.mp4"
    assert video["content_type"] == "video/mp4"
    body = httpx.get(video["url"], timeout=10).content
    assert body[4:8] == b"ftyp" and len(body) == video["bytes"]
    assert not (agent.log_path.parent / "nas" / "output" / "video" / video["filename"]).exists()


def test_an_animated_webp_asked_as_png_stays_webp(agent: AgentProcess) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0xFF0000}},
        "2": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0x0000FF}},
        "3": {"class_type": "ImageBatch", "inputs": {"image1": ["1", 0], "image2": ["2", 0]}},
        "4": {"class_type": "SaveAnimatedWEBP", "inputs": {"images": ["3", 0], "filename_prefix": "anim", "fps": 6.0,
                                                           "lossless": True, "quality": 80, "method": "default"}},
    }
    response = agent.run({"prompt": prompt, "options": {"output": {"format": "png"}}})
    assert response.status_code == 200, response.text
    [image] = response.json()["4"]["images"]
    assert image["content_type"] == "image/webp" and image["key"].endswith(".webp")
    assert httpx.get(image["url"], timeout=10).content[8:12] == b"WEBP"
