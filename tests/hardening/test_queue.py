"""A thousand background runs queued at once behind a long run, on one agent: every one succeeds, none waits
holding a socket, and the long run is answered. The long run lasts until the thousand are accepted (the double's
hold), however long that takes on this machine; how fast it is answered is bench/burst.py --queue's figure."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable

import aiohttp

from agent_process import AgentProcess
from double_helpers import double_info, pixel, rgb, save_prompt, wait_double
from hardening.conftest import record
from waiting import EVENTUALLY, until

QUEUED = 1000
LONG_COLOR = 0x203040


async def test_a_thousand_background_runs_behind_a_long_one_all_succeed(
        agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory()
    assert agent.comfyui_url is not None
    comfyui = agent.comfyui_url
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64),
                                     timeout=aiohttp.ClientTimeout(total=4 * EVENTUALLY)) as session:
        started = time.monotonic()
        with agent.comfyui_held():
            long_run = asyncio.ensure_future(session.post(f"{agent.url}/api/run", json=save_prompt(LONG_COLOR)))
            await wait_double(comfyui, lambda info: info["held"], "the long run held", timeout=EVENTUALLY)

            async def submit(index: int) -> int:
                headers = {"Prefer": "respond-async", "task-id": f"queued-{index}"}
                async with session.post(f"{agent.url}/api/run", json=save_prompt(1000 + index, f"q{index}"),
                                        headers=headers) as reply:
                    return reply.status

            accepted = await asyncio.gather(*(submit(index) for index in range(QUEUED)))
            assert accepted == [202] * QUEUED
            info = await double_info(comfyui)
            assert len(info["sockets"]) == 1, info["sockets"]  # the agent's one event connection, whatever waits
            assert not long_run.done()  # held: the thousand were all accepted behind it
        long_reply = await long_run
        assert long_reply.status == 200
        assert pixel(await long_reply.json(), "2") == rgb(LONG_COLOR)

        async def statuses() -> Counter[str] | None:
            seen: Counter[str] = Counter()
            for index in range(QUEUED):
                async with session.get(f"{agent.url}/api/tasks/queued-{index}") as reply:
                    seen[(await reply.json())["status"]] += 1
            return seen if seen["succeeded"] + seen["failed"] + seen["canceled"] == QUEUED else None

        final = await until(statuses, 4 * EVENTUALLY, "every queued run to end")
        assert final == Counter({"succeeded": QUEUED}), final
    record("queue", queued=QUEUED, all_done_seconds=round(time.monotonic() - started, 1))
