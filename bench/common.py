"""What the benchmarks share: an agent process to measure, and waiting for a server to answer."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_agent(store: str, comfy: str, cpu: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """The agent as its own process attached to `comfy`, optionally pinned to one CPU; returns it and its URL."""
    port = free_port()
    env = {**os.environ, "AGENT_HOST": "127.0.0.1", "AGENT_PORT": str(port), "TASK_STORE": store,
           "LOG_LEVEL": "warning", "COMFYUI_URL": comfy}
    command = [sys.executable, "-m", "agent"]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


async def wait_http(url: str, timeout: float = 60) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout * 10)):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")
