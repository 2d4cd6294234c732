"""Bursts: N tiny runs sent at once, through the agent and straight to ComfyUI, as a ratio of wall times.

    python bench/burst.py                            # against the test double (started here)
    python bench/burst.py --comfyui-url URL          # against a running ComfyUI
    python bench/burst.py --sizes 64,256,1000 --rounds 3
    python bench/burst.py --queue 1000               # 1,000 background runs behind one long run, and its time

The floor is ComfyUI driven the way one careful client would: one socket, every prompt submitted at once under
its clientId, every message read until each prompt's end, then each output image read back as base64 (the work
the agent does for its reply). Through the agent, each run is its own held `POST /api/run`. Every answer must be
200, or 429/503 with `Retry-After` within a second. Rounds alternate between the two paths.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from types import SimpleNamespace
from typing import Any

import aiohttp
import uvloop
from common import DirectClient, comfy_and_agent, tiny_prompt, wait_http

REFUSED_WITHIN = 1.0  # from the moment the request was sent: this process's own backlog of sends does not count
TIMEOUT = aiohttp.ClientTimeout(total=600)


async def floor(session: aiohttp.ClientSession, comfy: str, prompts: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    async with DirectClient(session, comfy) as direct:
        await asyncio.gather(*(direct.run(prompt) for prompt in prompts))
    return time.perf_counter() - started


def sent_at() -> aiohttp.TraceConfig:
    """Stamps a request's `trace_request_ctx` when its headers have left, so the time to an answer is the agent's."""
    trace = aiohttp.TraceConfig()

    async def stamp(session: aiohttp.ClientSession, context: SimpleNamespace, params: object) -> None:
        if context.trace_request_ctx is not None:  # a request that asked to be timed
            context.trace_request_ctx.at = time.perf_counter()

    trace.on_request_headers_sent.append(stamp)
    return trace


async def through_agent(session: aiohttp.ClientSession, agent: str,
                        prompts: list[dict[str, Any]]) -> tuple[float, dict[int, int], list[str]]:
    problems: list[str] = []

    async def one(prompt: dict[str, Any]) -> int:
        try:
            return await answered(prompt)
        except aiohttp.ClientError as exc:
            problems.append(f"no answer: {exc.__class__.__name__}: {exc}")
            return 0

    async def answered(prompt: dict[str, Any]) -> int:
        sent = SimpleNamespace(at=time.perf_counter())  # set again once the request is on the wire
        async with session.post(f"{agent}/api/run", json=prompt, trace_request_ctx=sent) as reply:
            await reply.read()
            waited = time.perf_counter() - sent.at
            if reply.status in (429, 503):
                if "Retry-After" not in reply.headers:
                    problems.append(f"{reply.status} without Retry-After")
                if waited > REFUSED_WITHIN:
                    problems.append(f"{reply.status} after {waited:.2f} s")
            elif reply.status != 200:
                problems.append(f"{reply.status}: {(await reply.text())[:200]}")
            return reply.status

    started = time.perf_counter()
    statuses = await asyncio.gather(*(one(prompt) for prompt in prompts))
    counts = {status: statuses.count(status) for status in sorted(set(statuses))}
    return time.perf_counter() - started, counts, problems


async def bursts(session: aiohttp.ClientSession, comfy_session: aiohttp.ClientSession, comfy: str, agent: str,
                 sizes: list[int], rounds: int) -> None:
    print("| runs at once | ComfyUI's floor (one socket) | through the agent | ratio | answers |")
    print("| --- | --- | --- | --- | --- |")
    serial = 0
    for size in sizes:
        floors: list[float] = []
        agents: list[float] = []
        counts: dict[int, int] = {}
        problems: list[str] = []
        for _ in range(rounds):
            floors.append(await floor(comfy_session, comfy, [tiny_prompt(serial + index) for index in range(size)]))
            serial += size
            wall, counts, found = await through_agent(session, agent, [tiny_prompt(serial + index)
                                                                       for index in range(size)])
            agents.append(wall)
            problems += found
            serial += size
        direct, through = statistics.median(floors), statistics.median(agents)
        answers = ", ".join(f"{count} x {status}" for status, count in counts.items())
        print(f"| {size} | {direct:.2f} s | {through:.2f} s | {through / direct:.2f}x | {answers} |", flush=True)
        for problem in sorted(set(problems)):
            print(f"  problem: {problem}")


async def queue_behind_a_long_run(session: aiohttp.ClientSession, agent: str, count: int, long_seconds: float) -> None:
    long_run = tiny_prompt(7)
    long_run["1"]["_meta"] = {"double": {"delay": long_seconds}}  # the double's delay; real ComfyUI ignores _meta
    started = time.perf_counter()

    async def held_run() -> float:
        """The long run's own time: the queue behind it must not slow it down."""
        async with session.post(f"{agent}/api/run", json=long_run) as reply:
            assert reply.status == 200, await reply.text()
            await reply.read()
        return time.perf_counter() - started

    held = asyncio.ensure_future(held_run())
    ids = [f"queued-{uuid.uuid4().hex[:8]}-{index}" for index in range(count)]

    async def submit(task_id: str, index: int) -> int:
        async with session.post(f"{agent}/api/run", json=tiny_prompt(1000 + index),
                                headers={"Prefer": "respond-async", "task-id": task_id}) as reply:
            return reply.status

    accepted = await asyncio.gather(*(submit(task_id, index) for index, task_id in enumerate(ids)))
    statuses: dict[str, int] = {}
    pending = set(ids)
    while pending:
        await asyncio.sleep(0.5)
        for task_id in list(pending):
            async with session.get(f"{agent}/api/tasks/{task_id}") as reply:
                status = (await reply.json())["status"]
            if status in ("succeeded", "failed", "canceled"):
                statuses[status] = statuses.get(status, 0) + 1
                pending.discard(task_id)
    long_run_seconds = await held
    print(f"{count} background runs behind a {long_seconds:g} s run: accepted "
          f"{ {status: accepted.count(status) for status in set(accepted)} }, ended {statuses}, "
          f"{time.perf_counter() - started:.1f} s in all; the long run answered in {long_run_seconds:.2f} s "
          f"({long_run_seconds / long_seconds:.2f}x its node's time)")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--sizes", default="64,256,1000")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--queue", type=int, default=0, help="background runs behind one long run, instead")
    parser.add_argument("--long-seconds", type=float, default=5.0)
    args = parser.parse_args()
    with comfy_and_agent(args.comfyui_url) as (comfy, _, agent):
        # One client's pool for ComfyUI (a thousand connections at once make ComfyUI reset some), none for the
        # agent's callers, each of which is someone else.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=TIMEOUT,
                                         trace_configs=[sent_at()]) as session, \
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64), timeout=TIMEOUT) as comfy_session:
            await wait_http(f"{agent}/readyz")
            await floor(comfy_session, comfy, [tiny_prompt(index) for index in range(32)])  # warm both up
            await through_agent(session, agent, [tiny_prompt(100 + index) for index in range(32)])
            if args.queue:
                await queue_behind_a_long_run(session, agent, args.queue, args.long_seconds)
            else:
                await bursts(session, comfy_session, comfy, agent, [int(size) for size in args.sizes.split(",")],
                             args.rounds)


if __name__ == "__main__":
    uvloop.run(main())
