"""5,000 runs through one agent: its memory grows by less than 20 MB, and no socket or file is left open."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from agent_process import AgentProcess
from double_helpers import save_prompt, with_preview
from hardening.conftest import record

RUNS = 5000
WARMUP = 500
CONCURRENCY = 16


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_files(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def run_many(url: str, start: int, count: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(session: aiohttp.ClientSession, serial: int) -> None:
        prompt = save_prompt(serial % 0xFFFFFF, f"mem{serial % 11}")
        if serial % 5 == 0:
            prompt = with_preview(prompt)
        async with gate, session.post(f"{url}/api/run", json=prompt, headers={"task-id": f"mem-{serial}"}) as response:
            assert response.status == 200, await response.text()
            await response.read()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await asyncio.gather(*(one(session, serial) for serial in range(start, start + count)))


async def test_five_thousand_runs_leak_nothing(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory()
    pid = agent.proc.pid
    idle = rss_mib(pid)
    await run_many(agent.url, 0, WARMUP)
    await asyncio.sleep(1)
    warm, warm_files = rss_mib(pid), open_files(pid)
    started = time.monotonic()
    await run_many(agent.url, WARMUP, RUNS)
    await asyncio.sleep(2)
    final, final_files = rss_mib(pid), open_files(pid)
    record("memory", runs=RUNS, idle_mib=round(idle, 1), after_warmup_mib=round(warm, 1),
           after_runs_mib=round(final, 1), growth_mib=round(final - warm, 1), open_files=[warm_files, final_files],
           seconds=round(time.monotonic() - started, 1))
    assert final - warm < 20, (warm, final)
    assert final_files <= warm_files + 5, (warm_files, final_files)
