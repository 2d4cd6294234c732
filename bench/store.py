"""What the shared task store costs.

    python bench/store.py progress   # a 100-step run through the agent: file store vs memory store
    python bench/store.py status     # GET /api/status requests/s on one core: file store and Redis (needs wrk)

`progress` runs the same 100-step prompt (the double reports 100 progress steps over 2 s) through an agent with
each store and compares the run times. `status` pins the agent to CPU 0 and wrk to CPU 1 and polls one task's
status for 10 s, for a running task and for a finished one (results=false), from each store.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from common import REPO, start_agent, wait_http

sys.path.insert(0, str(REPO / "tests"))

from agent.stores import open_store
from agent.tasks.model import NodeProgress, Task, TaskStatus

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def hundred_steps(serial: int) -> dict[str, object]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1, "color": serial},
              "_meta": {"double": {"delay": 2.0, "progress": 100}}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "steps"}},
    }


async def progress_cost(runs: int) -> None:
    from comfy_double.harness import DoubleProcess

    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        (workdir / "comfyui").mkdir()
        double = DoubleProcess(workdir / "comfyui")
        await double.start()
        stores = {"memory": "memory://", "file": f"file://{workdir / 'tasks'}"}
        agents = {name: start_agent(url, double.url) for name, url in stores.items()}
        timings: dict[str, list[float]] = {name: [] for name in stores}
        try:
            for _, url in agents.values():
                await wait_http(f"{url}/readyz")
            async with aiohttp.ClientSession() as session:
                for serial in range(runs):
                    for name, (_, url) in agents.items():
                        started = time.perf_counter()
                        async with session.post(f"{url}/api/run", json=hundred_steps(serial * 2 + len(name))) as r:
                            assert r.status == 200, await r.text()
                        timings[name].append(time.perf_counter() - started)
        finally:
            for proc, _ in agents.values():
                proc.terminate()
                proc.wait(10)
            double.stop()
    memory, file = statistics.median(timings["memory"]), statistics.median(timings["file"])
    print(f"100-step run (100 progress messages over 2 s), median of {runs}:")
    print("| store | seconds |")
    print("| --- | --- |")
    print(f"| memory | {memory:.3f} |")
    print(f"| file | {file:.3f} |")
    print(f"file / memory: {file / memory:.3f} ({(file / memory - 1) * 100:+.1f} %)")


async def seed_tasks(url: str) -> None:
    stores = open_store(url, 3600, 3600)
    progress = {str(node): NodeProgress(max=20, value=node, start=1, last_updated=2) for node in range(12)}
    running = Task(task_id="bench-running", status=TaskStatus.RUNNING, progress=progress)
    await stores.records.save(running)
    done = Task(task_id="bench-done", progress=progress)
    done.finish(TaskStatus.SUCCEEDED)
    await stores.records.save(done, {"3": ["A" * 400_000]})
    await stores.close()


def wrk(url: str, seconds: int, script: str | None = None) -> float:
    """Requests/s of one wrk thread on CPU 1 with 32 connections; `script`: a Lua file that makes the requests.
    Any answer but a 2xx spoils the number."""
    lua = ["-s", script] if script is not None else []
    result = subprocess.run(["taskset", "-c", "1", "wrk", "-t", "1", "-c", "32", "-d", f"{seconds}s", *lua, url],
                            capture_output=True, text=True, check=True)
    match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
    assert match and "Non-2xx" not in result.stdout, result.stdout
    return float(match.group(1))


def poll_rates(agent: str, polled: str, seconds: int) -> list[tuple[str, float]]:
    """`GET /api/status` of the task `polled` and of the seeded finished one, each after a warm-up, by the word
    after `bench-` in their ids."""
    rates = []
    for task_id, query in ((polled, ""), ("bench-done", "&results=false")):
        url = f"{agent}/api/status?id={task_id}{query}"
        wrk(url, 2)  # warm-up
        rates.append((task_id.split("-")[1], wrk(url, seconds)))
    return rates


async def status_throughput(seconds: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        rows = []
        for name, url in (("file", f"file://{workdir / 'tasks'}"), ("redis", REDIS_URL)):
            await seed_tasks(url)
            proc, agent = start_agent(url, "http://127.0.0.1:9", cpu=0)
            try:
                await wait_http(f"{agent}/healthz")
                rows += [(name, kind, rate) for kind, rate in poll_rates(agent, "bench-running", seconds)]
            finally:
                proc.terminate()
                proc.wait(10)
    print(f"GET /api/status, agent on one core (CPU 0), wrk on CPU 1, 32 connections, {seconds} s:")
    print("| store | task | requests/s |")
    print("| --- | --- | --- |")
    for name, kind, rate in rows:
        print(f"| {name} | {kind} | {rate:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["progress", "status"])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(progress_cost(args.runs) if args.what == "progress" else status_throughput(args.seconds))


if __name__ == "__main__":
    main()
