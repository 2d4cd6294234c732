"""What the agent costs per run: the same tiny runs through the agent and straight to ComfyUI, as ratios.

    python bench/overhead.py                       # against the test double (started here)
    python bench/overhead.py --comfyui-url URL     # against a running ComfyUI (real or double)

Both paths do the same work per run: a fresh websocket registered before the prompt, the prompt, every
message until the end, and the output image read back and base64-encoded. Runs alternate between the two
paths so drift hits both alike. The agent runs as its own process, attached to the same ComfyUI.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import aiohttp
from common import REPO, free_port, start_agent, wait_http

DOUBLE = REPO / "tests" / "comfy_double" / "main.py"


def tiny_prompt(serial: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                     "color": serial % 0xFFFFFF}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}},
    }


async def direct_run(session: aiohttp.ClientSession, comfy: str, prompt: dict[str, Any]) -> None:
    """A correct client of ComfyUI, written as tightly as a caller would: what the agent is measured against."""
    client_id = uuid.uuid4().hex
    async with session.ws_connect(f"{comfy.replace('http', 'ws', 1)}/ws?clientId={client_id}") as ws:
        await ws.receive()
        async with session.post(f"{comfy}/prompt", json={"prompt": prompt, "client_id": client_id}) as resp:
            prompt_id = (await resp.json())["prompt_id"]
        images: list[dict[str, Any]] = []
        async for message in ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event.get("data", {})
            if data.get("prompt_id") != prompt_id:
                continue
            if event["type"] == "executed":
                images += data["output"].get("images", [])
            if event["type"] in ("execution_success", "execution_error"):
                break
    for image in images:
        async with session.get(f"{comfy}/view", params=image) as resp:
            base64.b64encode(await resp.read())


async def agent_run(session: aiohttp.ClientSession, agent: str, prompt: dict[str, Any]) -> None:
    async with session.post(f"{agent}/api/run", json=prompt) as resp:
        body = await resp.json()
        if resp.status != 200:
            raise RuntimeError(f"agent run failed: {body}")


async def timed(call: Callable[[], Awaitable[None]]) -> float:
    started = time.perf_counter()
    await call()
    return (time.perf_counter() - started) * 1000


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU the process has used: its cost, whatever the machine's other load does to latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def sequential(session: aiohttp.ClientSession, comfy: str, agent: str, runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"direct": [], "agent": []}
    for serial in range(runs):
        # cast: mypy cannot infer a lambda with a default argument against a Callable[[], ...] context
        samples["direct"].append(await timed(
            cast("Callable[[], Awaitable[None]]", lambda s=serial: direct_run(session, comfy, tiny_prompt(2 * s)))
        ))
        samples["agent"].append(await timed(
            cast("Callable[[], Awaitable[None]]", lambda s=serial: agent_run(session, agent, tiny_prompt(2 * s + 1)))
        ))
    return samples


async def concurrent(session: aiohttp.ClientSession, comfy: str, agent: str, runs: int,
                     width: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    gate = asyncio.Semaphore(width)

    async def one(call: Callable[[dict[str, Any]], Awaitable[None]], serial: int) -> float:
        async with gate:
            return await timed(lambda: call(tiny_prompt(serial)))

    for label, call in (("direct", lambda p: direct_run(session, comfy, p)),
                        ("agent", lambda p: agent_run(session, agent, p))):
        started = time.perf_counter()
        samples[label] = list(await asyncio.gather(*(one(call, 10_000 + serial) for serial in range(runs))))
        samples[label + "_wall"] = [(time.perf_counter() - started) * 1000]
    return samples


def report(title: str, samples: dict[str, list[float]]) -> None:
    direct, agent = summary(samples["direct"]), summary(samples["agent"])
    print(f"\n{title}")
    print("| path | median ms | p95 ms |")
    print("| --- | --- | --- |")
    print(f"| direct to ComfyUI | {direct[0]:.2f} | {direct[1]:.2f} |")
    print(f"| through the agent | {agent[0]:.2f} | {agent[1]:.2f} |")
    print(f"| agent / direct | {agent[0] / direct[0]:.2f}x | {agent[1] / direct[1]:.2f}x |")
    print(f"| agent overhead | {agent[0] - direct[0]:+.2f} ms | {agent[1] - direct[1]:+.2f} ms |")
    if "agent_wall" in samples:
        print(f"wall time for all runs: direct {samples['direct_wall'][0]:.0f} ms, "
              f"agent {samples['agent_wall'][0]:.0f} ms")


def start_double(workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    args = [sys.executable, str(DOUBLE), "--listen", "127.0.0.1", "--port", str(port)]
    for kind in ("input", "output", "temp"):
        args += [f"--{kind}-directory", str(workdir / kind)]
    proc = subprocess.Popen(args, cwd=DOUBLE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--runs", type=int, default=200, help="sequential runs per path")
    parser.add_argument("--concurrent-runs", type=int, default=256, help="runs per path in the concurrent part")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        procs = []
        comfy = args.comfyui_url
        if comfy is None:
            double, comfy = start_double(workdir)
            procs.append(double)
        agent_proc, agent = start_agent(os.environ.get("BENCH_TASK_STORE") or f"file://{workdir / 'tasks'}", comfy)
        procs.append(agent_proc)
        try:
            connector = aiohttp.TCPConnector(limit=0)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
                await wait_http(f"{agent}/readyz")
                idle = rss_mib(agent_proc.pid)
                await sequential(session, comfy, agent, args.warmup)
                cpu_before = cpu_seconds(agent_proc.pid)
                report(f"Sequential: {args.runs} runs per path", await sequential(session, comfy, agent, args.runs))
                user, system = (after - before for after, before in zip(cpu_seconds(agent_proc.pid), cpu_before,
                                                                        strict=True))
                print(f"agent CPU per run: {(user + system) / args.runs * 1000:.2f} ms "
                      f"({user / args.runs * 1000:.2f} user, {system / args.runs * 1000:.2f} system)")
                report(f"Concurrent: {args.concurrent_runs} runs per path, {args.concurrency} at a time",
                       await concurrent(session, comfy, agent, args.concurrent_runs, args.concurrency))
                print(f"\nagent RSS: {idle:.1f} MiB idle after start, {rss_mib(agent_proc.pid):.1f} MiB after the runs")
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
