"""`oss://` and `s3://` inputs, read from a real S3 server (moto on 127.0.0.1) with the object store's settings,
with or without an output store, under the same size cap as any input."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image

from agent_harness import running_agent
from double_helpers import double_info
from files_server import png
from s3_server import S3

LIMIT = 200_000


def loading(value: str) -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": value}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "in"}}}


def bucket_settings(s3: S3, **more: Any) -> dict[str, Any]:
    """No output store: reading inputs from a bucket needs only the endpoint and the credentials."""
    return {"output_store_endpoint": s3.endpoint, "output_store_key_id": "test-key",
            "output_store_key_secret": "test-secret", "input_max_bytes": LIMIT, **more}


async def test_an_s3_input_reaches_comfyui_as_its_bytes(double: str, s3: S3) -> None:
    s3.put("inputs/red pixel.png", png((220, 20, 20)))
    async with running_agent(comfyui_url=double, **bucket_settings(s3)) as agent:
        reply = await agent.post("/api/run", json=loading(f"s3://{s3.bucket}/inputs/red%20pixel.png"))
        body = await reply.json()
        assert reply.status == 200, body
    image = Image.open(io.BytesIO(base64.b64decode(body["2"]["results"][0]))).convert("RGB")
    assert image.getpixel((0, 0)) == (220, 20, 20)
    assert (await double_info(double))["uploads"] == 1


BAD = [
    ("missing object", "s3://{bucket}/nope.png", "no object 'nope.png'"),
    ("object over the limit", "s3://{bucket}/big.png", f"larger than the {LIMIT}-byte limit"),
    ("not an image", "s3://{bucket}/notes.txt", "not an image file"),
    ("a bucket and no key", "s3://{bucket}", "names a bucket but no object"),
    ("not a bucket name", "s3://Not_A_Bucket/x.png", "is not a bucket name"),
]


@pytest.mark.parametrize(("case", "value", "reason"), BAD, ids=[case for case, _, _ in BAD])
async def test_a_bucket_input_that_cannot_be_read_is_a_400_and_comfyui_gets_nothing(
        double: str, s3: S3, case: str, value: str, reason: str) -> None:
    s3.put("big.png", png((1, 1, 1)) + bytes(LIMIT))
    s3.put("notes.txt", b"hello " * 40)
    async with running_agent(comfyui_url=double, **bucket_settings(s3)) as agent:
        reply = await agent.post("/api/run", json=loading(value.format(bucket=s3.bucket)))
        body = await reply.json()
    assert reply.status == 400 and body["message"] == "InputImageError", body
    assert reason in body["reason"] and (body["node_id"], body["input"]) == ("1", "image")
    assert (await double_info(double))["prompts_received"] == 0


async def test_without_credentials_the_error_says_so(double: str, s3: S3,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s3.put("a.png", png((1, 2, 3)))
    async with running_agent(comfyui_url=double, output_store_endpoint=s3.endpoint) as agent:
        reply = await agent.post("/api/run", json=loading(f"s3://{s3.bucket}/a.png"))
        body = await reply.json()
    assert reply.status == 400 and "no credentials for object storage" in body["reason"], body
