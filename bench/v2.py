"""Comfy API v2 through this agent and through Comfy's own reference server for one ComfyUI (`comfy-api-proxy`
0.1.6), both in front of the same ComfyUI and driven by Comfy's SDK (`comfy-sdk`), beside ComfyUI driven directly.

    python bench/v2.py                          # against the test double (started here)
    python bench/v2.py --comfyui-url URL        # against a running ComfyUI
    python bench/v2.py --runs 100 --burst 64 --rounds 3

Each v2 run does what an app does for its image: submit the graph, follow the job's events to its end, read the
output's bytes. The direct path is `common.DirectClient` (the prompt, its messages, the image from /view). Runs
alternate between the three paths; each server's CPU per run is read from /proc around them (the cost a burst
pays, whatever the latency). `comfy.run()` then the output's bytes is timed apart: the SDK reads the job once at
once and then sleeps from 0.5 s, so a server that cannot tell a short job's end by then costs half a second. A
stream refused for too many at once (`too_many_streams`) is replaced by the SDK's polling, as the refusal asks.
A run whose events told its end more than `LATE` seconds after the job ended in ComfyUI (a stream that missed
the end and caught it on a keepalive) is counted as late.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import uvloop
from burst import floor
from comfy_sdk import AsyncComfy, ComfyError, JobFailed, StatusChange
from common import DirectClient, comfy_and_agent, cpu_seconds, free_port, tiny_prompt, wait_http

LATE = 2.0  # seconds: a tiny run's end told later than this came from a keepalive, not from the run


@contextlib.contextmanager
def proxy(comfy: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "comfy_api_proxy.cli", "run", "--comfyui", comfy,
                                "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(10)


def client(base_url: str) -> AsyncComfy:
    """The SDK reads its deployment from the environment, as an app's would be configured."""
    os.environ["COMFY_BASE_URL"] = base_url
    os.environ.pop("COMFY_API_KEY", None)
    return AsyncComfy(client_info="comfyui-agent-bench", timeout=120)


async def through_v2(comfy: AsyncComfy, prompt: dict[str, Any]) -> float:
    """Seconds to the output's bytes: submit, the job's events to its end, the bytes."""
    started = time.perf_counter()
    job = await comfy.submit(comfy.workflows.from_json(prompt))
    try:
        async for event in job.events():
            if isinstance(event, StatusChange) and event.status in ("succeeded", "failed", "canceled", "expired"):
                break
    except ComfyError as exc:  # as the refusal says: poll instead (comfy-api-proxy serves 8 streams at once)
        if exc.code != "too_many_streams":
            raise
        await job.wait()
    await job.refresh()
    if job.status != "succeeded":
        raise RuntimeError(f"job {job.id} ended {job.status}: {job.error}")
    for output in job.outputs:
        await output.to_bytes()
    return time.perf_counter() - started


async def timed(call: Callable[[], Awaitable[object]]) -> float:
    started = time.perf_counter()
    await call()
    return time.perf_counter() - started


def median_p95(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.95)]


def line(name: str, samples: list[float], direct: float, cpu: float | None) -> str:
    median, p95 = median_p95(samples)
    late = sum(sample > LATE for sample in samples)
    spent = f"{cpu * 1000:.2f} ms" if cpu is not None else "-"
    return (f"| {name} | {median * 1000:.1f} ms | {p95 * 1000:.1f} ms | {median / direct:.2f}x | "
            f"{late} of {len(samples)} | {spent} |")


def cpu(pid: int) -> float:
    return sum(cpu_seconds(pid))


async def sequential(session: aiohttp.ClientSession, comfy_url: str, paths: dict[str, AsyncComfy],
                     runs: int, first: int) -> dict[str, list[float]]:
    """Seconds per run and path; every prompt is new to ComfyUI (nothing cached)."""
    samples: dict[str, list[float]] = {"direct": [], **{name: [] for name in paths}}
    async with DirectClient(session, comfy_url) as direct:
        for serial in range(first, first + 3 * runs, 3):
            prompt = tiny_prompt(serial)
            samples["direct"].append(await timed(lambda p=prompt: direct.run(p)))  # type: ignore[misc]
            for offset, (name, sdk) in enumerate(paths.items(), start=1):
                samples[name].append(await through_v2(sdk, tiny_prompt(serial + offset)))
    return samples


def report(samples: dict[str, list[float]], spent: dict[str, float]) -> None:
    runs = len(samples["direct"])
    floor_median = statistics.median(samples["direct"])
    print(f"\nOne run at a time ({runs} per path): submit, events to the end, the output's bytes")
    print("| path | median | p95 | / direct | late ends | server CPU per run |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, values in samples.items():
        print(line(name, values, floor_median, spent.get(name)))


async def burst(session: aiohttp.ClientSession, comfy_url: str, paths: dict[str, AsyncComfy], size: int,
                rounds: int, serial: int) -> None:
    walls: dict[str, list[float]] = {"direct": [], **{name: [] for name in paths}}
    late: dict[str, int] = dict.fromkeys(paths, 0)
    for _ in range(rounds):
        prompts = [tiny_prompt(serial + index) for index in range(size)]
        serial += size
        walls["direct"].append(await floor(session, comfy_url, prompts))
        for name, sdk in paths.items():
            prompts = [tiny_prompt(serial + index) for index in range(size)]
            serial += size
            started = time.perf_counter()
            each = await asyncio.gather(*(through_v2(sdk, prompt) for prompt in prompts))
            walls[name].append(time.perf_counter() - started)
            late[name] += sum(seconds > LATE + walls["direct"][-1] for seconds in each)
    floor_median = statistics.median(walls["direct"])
    print(f"\nBursts of {size} ({rounds} rounds, median wall time)")
    print("| path | wall | / direct | late ends |")
    print("| --- | --- | --- | --- |")
    for name, values in walls.items():
        told = f"{late[name]} of {size * rounds}" if name in late else "-"
        print(f"| {name} | {statistics.median(values):.2f} s | {statistics.median(values) / floor_median:.2f}x | "
              f"{told} |")


async def sdk_run(paths: dict[str, AsyncComfy], runs: int) -> None:
    """`comfy.run()` and the output's bytes, the paths alternated."""
    samples: dict[str, list[float]] = {name: [] for name in paths}
    failed: dict[str, list[str]] = {name: [] for name in paths}
    for serial in range(runs):
        for offset, (name, sdk) in enumerate(paths.items()):
            started = time.perf_counter()
            try:
                job = await sdk.run(sdk.workflows.from_json(tiny_prompt(900_000 + 10 * serial + offset)))
                for output in job.outputs:
                    await output.to_bytes()
            except JobFailed as exc:
                failed[name].append(str(exc))
            samples[name].append(time.perf_counter() - started)
    print(f"\n`comfy.run()` then the output's bytes ({runs} runs per path; the SDK sleeps from 0.5 s when its "
          "first read finds the job going):")
    print("| path | median | p95 | failed |")
    print("| --- | --- | --- | --- |")
    for name, values in samples.items():
        median, p95 = median_p95(values)
        told = f"{len(failed[name])}, as `{failed[name][0]}`" if failed[name] else "0"
        print(f"| {name} | {median * 1000:.1f} ms | {p95 * 1000:.1f} ms | {told} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--burst", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sdk-runs", type=int, default=40, help="`comfy.run()` runs per path")
    args = parser.parse_args()
    with (comfy_and_agent(args.comfyui_url) as (comfy_url, agent_process, agent_url),
          proxy(comfy_url) as (proxy_url, proxy_process)):
        await wait_http(f"{agent_url}/readyz")
        await wait_http(f"{proxy_url}/api/v2/health")
        async with aiohttp.ClientSession() as session, client(agent_url) as agent, client(proxy_url) as reference:
            paths = {"this agent": agent, "comfy-api-proxy": reference}
            pids = {"this agent": agent_process.pid, "comfy-api-proxy": proxy_process.pid}
            await sequential(session, comfy_url, paths, 10, 100_000)  # warm-up
            before = {name: cpu(pid) for name, pid in pids.items()}
            samples = await sequential(session, comfy_url, paths, args.runs, 0)
            report(samples, {name: (cpu(pid) - before[name]) / args.runs for name, pid in pids.items()})
            await burst(session, comfy_url, paths, args.burst, args.rounds, 500_000)
            await sdk_run(paths, args.sdk_runs)


if __name__ == "__main__":
    uvloop.run(main())
