"""Comfy's own SDK (`comfy-sdk`) pointed at the gateway: a job submitted there runs on a worker (handed to FC's
asynchronous front), and its events, outputs and assets are served by the gateway, with an output store (moto's
S3) that the gateway and the workers share."""

from __future__ import annotations

import asyncio
import io

import pytest
from comfy_sdk import AsyncComfy, StatusChange
from PIL import Image

from double_helpers import png_of, rgb
from gateway.test_gateway import TOKEN, Deployment, deployment  # noqa: F401 - the fixture
from s3_server import S3

pytestmark = pytest.mark.timeout(180)


async def test_a_job_submitted_at_the_gateway_runs_on_a_worker_and_is_read_at_the_gateway(
        deployment: Deployment, s3: S3, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811 - the fixture
    env = {"OUTPUT_STORE": f"s3://{s3.bucket}/runs", "OUTPUT_STORE_ENDPOINT": s3.endpoint,
           "OUTPUT_STORE_ACCESS_KEY_ID": "test-key", "OUTPUT_STORE_ACCESS_KEY_SECRET": "test-secret"}
    gateway = await asyncio.to_thread(deployment.start_gateway, **env)
    await deployment.start_workers(env=env)
    monkeypatch.setenv("COMFY_BASE_URL", gateway)
    monkeypatch.setenv("COMFY_API_KEY", TOKEN)
    async with AsyncComfy() as comfy:
        workflow = comfy.workflows.from_json({
            "1": {"class_type": "LoadImage", "inputs": {"image": "placeholder.png"}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "gw"}}})
        workflow.set_input("1", "image", comfy.assets.from_bytes(png_of(0x118844), filename="green.png"))
        job = await comfy.submit(workflow)
        assert job._model.urls.events.startswith(gateway)  # followed from the gateway, not a worker
        statuses = [event.status async for event in job.events() if isinstance(event, StatusChange)]
        assert statuses[-1] == "succeeded"
        await job.refresh()
        [output] = job.outputs
        image = Image.open(io.BytesIO(await output.to_bytes())).convert("RGB")
    assert image.getpixel((0, 0)) == rgb(0x118844)
    invocation = deployment.front.invocation(job.id)
    assert invocation.headers["X-Fc-Invocation-Type"] == "Async"
    stored = s3.keys()
    assert [key for key in stored if key.startswith("runs/assets/")]  # the asset's bytes, in the bucket
