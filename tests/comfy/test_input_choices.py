"""Every list input of real ComfyUI 0.3.64's `/object_info` (recorded), as a worker publishes them for gateways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from agent.comfy.client import ComfyClient
from agent_harness import serving
from recordings import recording


@pytest.fixture
async def client() -> AsyncIterator[ComfyClient]:
    full: dict[str, Any] = recording("object_info_full")
    full["Newer"] = {"input": {"required": {"model": ["COMBO", {"options": ["a", "b"]}], "n": ["INT", {}]},
                               "optional": {"model": [["optional-only"]], "extra": [["x"]]}}}
    full["Odd"] = {"input": {"required": "not an object"}}

    async def object_info(_: web.Request) -> web.Response:
        return web.json_response(full)

    app = web.Application()
    app.router.add_get("/object_info", object_info)
    async with serving(app) as url, aiohttp.ClientSession() as session:
        yield ComfyClient(url, session, 4)


async def test_every_list_input_of_every_class_and_nothing_else(client: ComfyClient) -> None:
    listed = await client.all_input_choices()
    assert listed["CheckpointLoaderSimple"] == {"ckpt_name": ["random-sd15.safetensors"]}
    assert listed["KSampler"]["sampler_name"][:3] == ["euler", "euler_cfg_pp", "euler_ancestral"]
    assert "seed" not in listed["KSampler"]  # an INT is no list
    assert listed["Newer"] == {"model": ["a", "b"], "extra": ["x"]}  # COMBO's form; required wins over optional
    assert "Odd" not in listed
