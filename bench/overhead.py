"""What the agent costs per run: the same tiny runs through the agent and straight to ComfyUI, as ratios.

    python bench/overhead.py                       # against the test double (started here)
    python bench/overhead.py --comfyui-url URL     # against a running ComfyUI (real or double)

Both paths do the same work per run: the prompt, every message until its end on one socket held open, and the
output image read back and base64-encoded (the direct path is `common.DirectClient`). Runs alternate between the
two paths so drift hits both alike. The agent runs as its own process, attached to the same ComfyUI.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import aiohttp
import uvloop
from common import (
    DirectClient,
    comfy_and_agent,
    cpu_seconds,
    rss_mib,
    tiny_prompt,
    wait_http,
)


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


async def sequential(session: aiohttp.ClientSession, direct: DirectClient, agent: str,
                     runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"direct": [], "agent": []}
    for serial in range(runs):
        # cast: mypy cannot infer a lambda with a default argument against a Callable[[], ...] context
        samples["direct"].append(await timed(
            cast("Callable[[], Awaitable[None]]", lambda s=serial: direct.run(tiny_prompt(2 * s)))
        ))
        samples["agent"].append(await timed(
            cast("Callable[[], Awaitable[None]]", lambda s=serial: agent_run(session, agent, tiny_prompt(2 * s + 1)))
        ))
    return samples


async def concurrent(session: aiohttp.ClientSession, direct: DirectClient, agent: str, runs: int,
                     width: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    gate = asyncio.Semaphore(width)

    async def one(call: Callable[[dict[str, Any]], Awaitable[None]], serial: int) -> float:
        async with gate:
            return await timed(lambda: call(tiny_prompt(serial)))

    for label, call in (("direct", direct.run),
                        ("agent", lambda p: agent_run(session, agent, p))):
        started = time.perf_counter()
        samples[label] = list(await asyncio.gather(*(one(call, 10_000 + serial) for serial in range(runs))))
        samples[label + "_wall"] = [(time.perf_counter() - started) * 1000]
    return samples


async def concurrent_rounds(session: aiohttp.ClientSession, direct: DirectClient, agent: str, runs: int,
                            width: int, rounds: int) -> None:
    """One round's wall ratio moves by a third between rounds on this machine (the first is the slowest), so the
    figure is the median of several rounds, each printed."""
    ratios = []
    for _ in range(rounds):
        samples = await concurrent(session, direct, agent, runs, width)
        ratios.append(samples["agent_wall"][0] / samples["direct_wall"][0])
        report(f"Concurrent: {runs} runs per path, {width} at a time", samples)
    print(f"\nagent / direct wall time, {rounds} rounds: {' '.join(f'{r:.2f}' for r in ratios)}, "
          f"median {statistics.median(ratios):.2f}")


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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--runs", type=int, default=200, help="sequential runs per path")
    parser.add_argument("--concurrent-runs", type=int, default=256, help="runs per path in the concurrent part")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--concurrent-rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=20)
    args = parser.parse_args()
    with comfy_and_agent(args.comfyui_url) as (comfy, agent_proc, agent):
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:
            await wait_http(f"{agent}/readyz")
            idle = rss_mib(agent_proc.pid)
            async with DirectClient(session, comfy) as direct:
                await sequential(session, direct, agent, args.warmup)
                cpu_before = cpu_seconds(agent_proc.pid)
                report(f"Sequential: {args.runs} runs per path",
                       await sequential(session, direct, agent, args.runs))
                user, system = (after - before for after, before in zip(cpu_seconds(agent_proc.pid), cpu_before,
                                                                        strict=True))
                print(f"agent CPU per run: {(user + system) / args.runs * 1000:.2f} ms "
                      f"({user / args.runs * 1000:.2f} user, {system / args.runs * 1000:.2f} system)")
                await concurrent_rounds(session, direct, agent, args.concurrent_runs, args.concurrency,
                                        args.concurrent_rounds)
            print(f"\nagent RSS: {idle:.1f} MiB idle after start, {rss_mib(agent_proc.pid):.1f} MiB after the runs")


if __name__ == "__main__":
    uvloop.run(main())
