"""The one event connection: every run shares it, frames reach their own run, previews their node, and a dropped
or silent connection is replaced once, with every run in flight catching up."""

from __future__ import annotations

import asyncio
import json
import logging
import struct
from typing import Any

import aiohttp
import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient

from agent.comfy.messages import Preview, parse_preview
from agent_harness import running_agent
from double_helpers import double_info, pixel, save_prompt, wait_double

Client = TestClient[web.Request, web.Application]


async def run(agent: Client, prompt: dict[str, Any]) -> ClientResponse:
    return await agent.post("/api/run", json=prompt)


def test_a_preview_names_its_prompt_and_node_from_metadata_or_from_what_executes() -> None:
    metadata = json.dumps({"node_id": "12", "display_node_id": "3", "prompt_id": "p-1", "image_type": "image/png"})
    tagged = struct.pack(">II", 4, len(metadata)) + metadata.encode() + b"\x89PNG..."
    assert parse_preview(tagged, None) == Preview("p-1", "3", "image/png", b"\x89PNG...")
    plain = struct.pack(">II", 1, 1) + b"\xff\xd8..."
    assert parse_preview(plain, ("p-2", "5")) == Preview("p-2", "5", "image/jpeg", b"\xff\xd8...")
    assert parse_preview(plain, None) == Preview(None, None, "image/jpeg", b"\xff\xd8...")
    assert parse_preview(b"\x00\x00", None) is None
    assert parse_preview(struct.pack(">II", 4, 99) + b"{not json", None) is None


async def test_every_run_shares_one_socket_and_gets_its_own_images(double: str) -> None:
    async with running_agent(comfyui_url=double) as agent:
        runs = [asyncio.create_task(run(agent, save_prompt(0x010101 * index, f"p{index}", delay=0.05)))
                for index in range(1, 33)]
        await wait_double(double, lambda info: info["prompts_received"] >= 16, "half the runs in ComfyUI")
        assert len((await double_info(double))["sockets"]) == 1
        for index, reply in enumerate(await asyncio.gather(*runs), start=1):
            assert reply.status == 200
            assert pixel(await reply.json(), "2") == (index, index, index)


@pytest.mark.parametrize("fault", ["drop_sockets", "stall_sockets"])
async def test_a_lost_connection_is_replaced_once_and_every_run_catches_up(
        double: str, fault: str, caplog: pytest.LogCaptureFixture) -> None:
    async with running_agent(comfyui_url=double, ws_stall_timeout=1.0) as agent:
        runs = [asyncio.create_task(run(agent, save_prompt(0x020202 * index, f"f{index}", delay=0.3)))
                for index in range(1, 7)]
        await wait_double(double, lambda info: info["running"] is not None, "a run executing")
        with caplog.at_level(logging.WARNING, logger="agent.comfy"):
            async with aiohttp.ClientSession() as session:
                await session.post(f"{double}/__double__/control", json={fault: True})
            replies = await asyncio.gather(*runs)
        for index, reply in enumerate(replies, start=1):
            assert reply.status == 200, await reply.text()
            assert pixel(await reply.json(), "2") == (2 * index, 2 * index, 2 * index)
    reconnects = [record for record in caplog.records if "ws.reconnect" in record.getMessage()]
    assert 1 <= len(reconnects) <= 2, [record.getMessage() for record in reconnects]  # one per fault, not per run


async def test_a_long_silent_step_is_no_stall(double: str, caplog: pytest.LogCaptureFixture) -> None:
    """ComfyUI sends nothing while one node works: three times the stall timeout of silence, with ComfyUI's queue
    saying the prompt still runs, opens no second connection (a stalled socket is test_a_lost_connection_...)."""
    async with running_agent(comfyui_url=double, ws_stall_timeout=1.0) as agent:
        with caplog.at_level(logging.WARNING, logger="agent.comfy"):
            reply = await run(agent, save_prompt(0x030303, "long", delay=3.5))
        assert reply.status == 200, await reply.text()
        assert pixel(await reply.json(), "2") == (3, 3, 3)
        assert len((await double_info(double))["sockets"]) == 1
    assert not [record.getMessage() for record in caplog.records if "ws.reconnect" in record.getMessage()]
