"""Websockets dropped, or gone silent without closing, in the middle of many runs: right answers, no hang."""

from __future__ import annotations

import asyncio
import base64
import io
import random
from collections.abc import Callable

import aiohttp
import pytest
from PIL import Image

from agent_process import AgentProcess
from double_helpers import rgb, save_prompt, wait_double, with_preview
from waiting import EVENTUALLY

RUNS = 40


async def control(session: aiohttp.ClientSession, agent: AgentProcess, **knobs: object) -> None:
    async with session.post(f"{agent.url}/__double__/control", json=knobs) as response:  # through the proxy
        assert response.status == 200


@pytest.mark.parametrize("fault", ["drop_sockets", "stall_sockets"])
async def test_sockets_failing_mid_run(agent_factory: Callable[..., AgentProcess], fault: str) -> None:
    agent = agent_factory(WS_STALL_TIMEOUT="1")
    rng = random.Random(fault)
    colors = [rng.randrange(0xFFFFFF) for _ in range(RUNS)]

    async def one(session: aiohttp.ClientSession, index: int) -> tuple[int, dict[str, object]]:
        prompt = with_preview(save_prompt(colors[index], f"sock{index}", delay=rng.uniform(0.05, 0.3)))
        async with session.post(f"{agent.url}/api/run", json=prompt) as response:
            return response.status, await response.json()

    async def saboteur(session: aiohttp.ClientSession) -> int:
        assert agent.comfyui_url is not None
        await wait_double(agent.comfyui_url, lambda info: info["running"], "a run executing", timeout=EVENTUALLY)
        strikes = 0
        for _ in range(8):
            # Each fault lands at a random moment on purpose: the answers must be right wherever it falls. What
            # the last check needs, a fault during a run, is waited for above (runs then go on for seconds).
            await asyncio.sleep(rng.uniform(0.2, 0.8))
            await control(session, agent, **{fault: True})
            strikes += 1
        return strikes

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2 * EVENTUALLY)) as session:
        runs = asyncio.gather(*(one(session, index) for index in range(RUNS)))
        strikes = await saboteur(session)
        replies = await runs
    assert strikes == 8
    for color, (status, body) in zip(colors, replies, strict=True):
        assert status == 200, body
        for node in ("2", "3"):
            data = base64.b64decode(body[node]["results"][0])  # type: ignore[index]
            assert Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0)) == rgb(color)
    assert "ws.reconnect" in agent.log(), "the saboteur never hit a run"
