"""Bad input to Comfy API v2, sent as plain HTTP (the SDK checks some of it before sending): each answer is v2's
error envelope, parsed by the SDK's own model, with a clear message, and nothing is stored or run."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from comfy_low.models import Asset, ErrorEnvelope

from agent.assets.hashes import content_hash
from agent_harness import running_agent
from double_helpers import double_info, png_of, save_prompt
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]
LIMIT = 4096  # INPUT_MAX_BYTES for these tests


@pytest.fixture
async def agent(double: str, tmp_path: Path) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, assets_dir=tmp_path / "assets", input_max_bytes=LIMIT) as client:
        yield client


def form(data: bytes, **fields: str) -> aiohttp.FormData:
    built = aiohttp.FormData()
    for name, value in fields.items():
        built.add_field(name, value)
    built.add_field("file", data, filename="f.png", content_type="image/png")
    return built


async def refused(response: aiohttp.ClientResponse, status: int, code: str) -> ErrorEnvelope:
    assert response.status == status, await response.text()
    envelope = ErrorEnvelope.model_validate(await response.json())
    assert envelope.error.code == code and envelope.error.message
    return envelope


async def test_an_upload_is_stored_once_and_refused_when_it_is_no_image_or_too_large(agent: Client,
                                                                                    tmp_path: Path) -> None:
    data = png_of(0x102030)
    first = await agent.post("/api/v2/assets", data=form(data, file_path="a.png"))
    second = await agent.post("/api/v2/assets", data=form(data, file_path="b.png"))
    assert (first.status, second.status) == (201, 200)
    one, two = Asset.model_validate(await first.json()), Asset.model_validate(await second.json())
    assert (one.created_new, two.created_new, one.hash, two.hash) == (True, False, content_hash(data), one.hash)
    assert [path.name for path in (tmp_path / "assets").iterdir()] == [content_hash(data).removeprefix("blake3:")]
    too_large = await refused(await agent.post("/api/v2/assets", data=form(b"\x89PNG\r\n\x1a\n" + b"0" * LIMIT)),
                              413, "payload_too_large")
    assert str(LIMIT) in too_large.error.message
    await refused(await agent.post("/api/v2/assets", data=form(b"#!/bin/sh\nexit 0\n")), 422, "invalid_request")
    mismatch = form(png_of(0x405060), expected_hash="blake3:" + "0" * 64)
    await refused(await agent.post("/api/v2/assets", data=mismatch), 409, "hash_mismatch")
    assert len(list((tmp_path / "assets").iterdir())) == 1


async def test_unknown_ids_hashes_and_cursors_and_a_second_cancel(agent: Client, double: str) -> None:
    await refused(await agent.get(f"/api/v2/assets/{uuid.uuid4()}"), 404, "not_found")
    await refused(await agent.delete(f"/api/v2/assets/{uuid.uuid4()}"), 404, "not_found")
    assert (await agent.head(f"/api/v2/assets/by-hash/blake3:{'a' * 64}")).status == 404
    await refused(await agent.post("/api/v2/assets/from-hash", json={"hash": "blake3:" + "b" * 64}),
                  404, "blob_not_found")
    await refused(await agent.get("/api/v2/jobs", params={"cursor": "not-a-cursor"}), 422, "invalid_cursor")
    await refused(await agent.get("/api/v2/jobs", params={"limit": "0"}), 400, "invalid_request")
    await refused(await agent.get(f"/api/v2/jobs/{uuid.uuid4()}/events"), 404, "not_found")
    await refused(await agent.post("/api/v2/jobs", json={"workflow": {"nodes": [], "links": []}}),
                  422, "invalid_workflow")  # the editor's format is converted: this one has nothing to run
    await refused(await agent.post("/api/v2/jobs", data=b"{"), 400, "invalid_request")
    await refused(await agent.post("/api/v2/jobs", json={"workflow": save_prompt(1), "metadata": {"k": 1}}),
                  422, "metadata_invalid")
    assert (await double_info(double))["prompts_queued"] == 0
    job = await (await agent.post("/api/v2/jobs", json={"workflow": save_prompt(2)})).json()

    async def succeeded() -> bool:
        status: str = (await (await agent.get(f"/api/v2/jobs/{job['id']}")).json())["status"]
        return status == "succeeded"

    await until(succeeded, EVENTUALLY, "the job to succeed")
    await refused(await agent.post(f"/api/v2/jobs/{job['id']}/cancel"), 409, "job_finished")
