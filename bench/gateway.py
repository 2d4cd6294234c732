"""What a status poll costs on the gateway, with no worker involved.

    python bench/gateway.py              # file store and Redis (needs wrk)

The gateway (`comfyui-agent gateway`, pinned to CPU 0) hands a run to the stand-in for FC's asynchronous front
(tests/fc_front.py), which holds it: no worker is up, as on FC before a GPU instance starts. wrk (CPU 1, 32
connections) then polls `GET /api/status` for that queued task and for a finished one, first on the gateway,
then, in the same run, on a worker agent reading the same store (its ComfyUI unreachable: a poll never asks
it), so the ratio says what the gateway's mode changes on the hot path. Polls of one task share a store read
per 0.1 s (agent/api/polls.py); the `spread` row polls SPREAD different queued tasks in turn, each one about
every half second, so every poll reads the store.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp
from common import REPO, start_agent, wait_http
from store import REDIS_URL, poll_rates, seed_tasks, wrk

sys.path.insert(0, str(REPO / "tests"))

from agent.gateway.handoff import handed_off
from agent.stores import open_store
from agent_harness import serving  # the test tools live in tests/
from fc_front import FcFront

NO_COMFYUI = "http://127.0.0.1:9"
SPREAD = 3000
ROTATE = """ids = {%s}
i = 0
request = function()
  i = i %% #ids + 1
  return wrk.format("GET", "/api/status?id=" .. ids[i])
end
"""
QUEUED = f"bench-queued-{uuid.uuid4().hex[:8]}"  # a new id each run: the Redis database outlives it


async def hand_off(gateway: str) -> None:
    prompt = {"1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 1}}}
    async with aiohttp.ClientSession() as session, session.post(
            f"{gateway}/api/run", json=prompt, headers={"Prefer": "respond-async", "task-id": QUEUED}) as reply:
        assert reply.status == 202, await reply.text()


async def seed_spread(store_url: str) -> list[str]:
    """SPREAD tasks as a gateway leaves them: queued, awaiting delivery."""
    stores = open_store(store_url, 3600, 3600)
    ids = [f"bench-spread-{index}" for index in range(SPREAD)]
    for task_id in ids:
        await stores.records.save(handed_off(task_id, time.time() + 3600))
    await stores.close()
    return ids


def wrk_rotating(url: str, ids: list[str], seconds: int) -> float:
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(ROTATE % ", ".join(f'"{task_id}"' for task_id in ids))
        script.flush()
        return wrk(url, seconds, script.name)


def polled(agent: str, seconds: int, spread: list[str]) -> list[tuple[str, float]]:
    return [*poll_rates(agent, QUEUED, seconds), (f"spread ({len(spread)})", wrk_rotating(agent, spread, seconds))]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    proc.wait(10)


async def measure(store: str, seconds: int) -> list[tuple[str, float, float]]:
    await seed_tasks(store)
    spread = await seed_spread(store)
    front = FcFront([])
    front.hold()
    async with serving(front.app()) as front_url:
        gateway, gateway_url = start_agent(store, NO_COMFYUI, cpu=0,
                                           env={"AGENT_MODE": "gateway", "WORKER_URL": front_url})
        try:
            await wait_http(f"{gateway_url}/openapi.json")  # the application, not the boot answer
            await hand_off(gateway_url)
            assert front.waiting == 1 or front.invocation(QUEUED).state == "pending"
            on_gateway = await asyncio.to_thread(polled, gateway_url, seconds, spread)
        finally:
            stop(gateway)
    worker, worker_url = start_agent(store, NO_COMFYUI, cpu=0)
    try:
        await wait_http(f"{worker_url}/openapi.json")
        on_worker = await asyncio.to_thread(polled, worker_url, seconds, spread)
    finally:
        stop(worker)
    return [(task, rate, worker_rate) for (task, rate), (_, worker_rate) in zip(on_gateway, on_worker, strict=True)]


async def main(seconds: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    rows = []
    with tempfile.TemporaryDirectory() as temp:
        for name, store in (("file", f"file://{Path(temp) / 'tasks'}"), ("redis", REDIS_URL)):
            rows += [(name, *row) for row in await measure(store, seconds)]
    print(f"GET /api/status, the agent on one core (CPU 0), wrk on CPU 1, 32 connections, {seconds} s, no worker:")
    print("| store | task | gateway requests/s | worker agent requests/s | gateway / worker |")
    print("| --- | --- | --- | --- | --- |")
    for name, task, gateway, worker in rows:
        print(f"| {name} | {task} | {gateway:,.0f} | {worker:,.0f} | {gateway / worker:.2f} |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    asyncio.run(main(parser.parse_args().seconds))
