"""5,000 runs through one agent: its memory grows by less than 20 MB, and no socket or file is left open."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import aiohttp

from agent.app import COMFYUI_CONNECTIONS
from agent_process import AgentProcess
from double_helpers import double_info, save_prompt, with_preview
from hardening.conftest import record
from waiting import EVENTUALLY, until

RUNS = 5000
WARMUP = 500
CONCURRENCY = 16


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def open_files(pid: int, comfyui_port: int) -> tuple[int, int]:
    """(files that are not connections to ComfyUI, connections to ComfyUI). The second are the HTTP pool's
    keep-alive connections (and the event socket): how many are idle at a moment depends on how the last
    burst ended, so they are bounded apart from the rest, where a leak would show."""
    inodes = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    to_comfyui = {f"socket:[{row[9]}]" for row in rows if int(row[2].rsplit(":", 1)[1], 16) == comfyui_port}
    return len(inodes - to_comfyui), len(inodes & to_comfyui)


def open_connections(port: int) -> int:
    """TCP sockets on local `port` not yet closed on their own side: ESTABLISHED (01), or CLOSE_WAIT (08, the
    peer has closed, the owner not yet)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(int(row[1].rsplit(":", 1)[1], 16) == port and row[3] in ("01", "08") for row in rows)


async def wound_down(agent: AgentProcess, connections: int) -> None:
    """Until the load is over on the agent's side too: the clients' connections closed by it (back to the
    `connections` it had idle), and nothing but the agent's one event connection left open on ComfyUI."""
    assert agent.comfyui_url is not None
    comfyui = agent.comfyui_url

    async def quiet() -> bool:
        return open_connections(agent.port) <= connections and len((await double_info(comfyui))["sockets"]) <= 1

    await until(quiet, EVENTUALLY, "the agent to close its connections to its callers")


async def run_many(url: str, start: int, count: int) -> None:
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(session: aiohttp.ClientSession, serial: int) -> None:
        prompt = save_prompt(serial % 0xFFFFFF, f"mem{serial % 11}")
        if serial % 5 == 0:
            prompt = with_preview(prompt)
        async with gate, session.post(f"{url}/api/run", json=prompt, headers={"task-id": f"mem-{serial}"}) as response:
            assert response.status == 200, await response.text()
            await response.read()

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2 * EVENTUALLY)) as session:
        await asyncio.gather(*(one(session, serial) for serial in range(start, start + count)))


async def test_five_thousand_runs_leak_nothing(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory()
    pid = agent.proc.pid
    idle, idle_connections = rss_mib(pid), open_connections(agent.port)
    await run_many(agent.url, 0, WARMUP)
    await wound_down(agent, idle_connections)
    assert agent.comfyui_url is not None
    comfyui_port = int(agent.comfyui_url.rsplit(":", 1)[1])
    warm, (warm_files, _) = rss_mib(pid), open_files(pid, comfyui_port)
    started = time.monotonic()
    await run_many(agent.url, WARMUP, RUNS)
    await wound_down(agent, idle_connections)
    final, (final_files, comfyui_connections) = rss_mib(pid), open_files(pid, comfyui_port)
    record("memory", runs=RUNS, idle_mib=round(idle, 1), after_warmup_mib=round(warm, 1),
           after_runs_mib=round(final, 1), growth_mib=round(final - warm, 1), open_files=[warm_files, final_files],
           comfyui_connections=comfyui_connections,
           seconds=round(time.monotonic() - started, 1))
    assert final - warm < 20, (warm, final)
    assert final_files <= warm_files + 5, (warm_files, final_files)
    assert comfyui_connections <= COMFYUI_CONNECTIONS + 1, comfyui_connections  # the pool's, and the event socket
