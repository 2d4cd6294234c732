"""What an API key costs a run: the same tiny held runs straight to ComfyUI, through the agent with its admin
token, and through it with an API key that has every limit (requests a minute, runs at once, GPU seconds a day and
a month, each far from reached, so each is checked on every run), alternated, as ratios to the direct run.

    python bench/keys.py [--runs 200]                    # the double (started here), the file store
    BENCH_TASK_STORE=redis://127.0.0.1:6379/9 python bench/keys.py
    python bench/keys.py --before DIR                    # also the agent of another checkout (an earlier commit)

A run with a key adds, on its instance: the key's lookup (from memory once cached), a request from its bucket,
a place among its runs at once and a read of its GPU seconds (store round trips), the place given back at its
end; every run, token or key, adds its ledger entry.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from common import REPO, DirectClient, start_agent, start_double, tiny_prompt, wait_http

TOKEN = "bench-admin-token"
LIMITS = {"requests_per_minute": 1_000_000, "concurrent_runs": 1000, "gpu_seconds_per_day": 1e9,
          "gpu_seconds_per_month": 1e9}


async def held(session: aiohttp.ClientSession, url: str, secret: str, prompt: dict[str, Any]) -> None:
    async with session.post(f"{url}/api/run", json=prompt, headers={"Authorization": f"Bearer {secret}"}) as reply:
        body = await reply.json()
        if reply.status != 200:
            raise RuntimeError(f"run failed: {body}")


async def new_key(session: aiohttp.ClientSession, url: str) -> str:
    async with session.post(f"{url}/api/keys", json={"name": "bench", "limits": LIMITS},
                            headers={"Authorization": f"Bearer {TOKEN}"}) as reply:
        secret: str = (await reply.json())["key"]
        return secret


async def measure(comfy: str, paths: dict[str, tuple[str, str]], runs: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"direct": [], **{name: [] for name in paths}}
    async with aiohttp.ClientSession() as session, DirectClient(session, comfy) as direct:
        for serial in range(runs):
            started = time.perf_counter()
            await direct.run(tiny_prompt(serial))
            samples["direct"].append(time.perf_counter() - started)
            for offset, (name, (url, secret)) in enumerate(paths.items(), 1):
                started = time.perf_counter()
                await held(session, url, secret, tiny_prompt(serial * 8 + offset))
                samples[name].append(time.perf_counter() - started)
    return samples


def _agents(workdir: Path, comfy: str, before: Path | None) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """This checkout's agent (and `before`'s), with the admin token, in front of `comfy`, each its own store."""
    store = os.environ.get("BENCH_TASK_STORE")
    procs, urls = [], []
    for name, checkout in (("agent", REPO), *((("before", before),) if before is not None else ())):
        proc, url = start_agent(store or f"file://{workdir / name}", comfy, outputs=workdir / "output",
                                env={"AGENT_TOKEN": TOKEN}, checkout=checkout)
        procs.append(proc)
        urls.append(url)
    return procs, urls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--before", type=Path, help="a checkout whose agent (with the token) runs beside")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        double, comfy = start_double(Path(temp))
        procs, urls = _agents(Path(temp), comfy, args.before)
        try:
            for url in urls:
                await wait_http(f"{url}/openapi.json")  # served by the application, once it is up
            async with aiohttp.ClientSession() as session:
                paths = {"token": (urls[0], TOKEN), "key": (urls[0], await new_key(session, urls[0])),
                         **({"before": (urls[1], TOKEN)} if len(urls) > 1 else {})}
            await measure(comfy, paths, 20)  # every path warmed up
            samples = await measure(comfy, paths, args.runs)
        finally:
            for proc in [double, *procs]:
                proc.terminate()
                proc.wait(10)
    direct = statistics.median(samples["direct"])
    print(f"{args.runs} held runs per path, alternated; median ms (ratio to direct)")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"  {name:8} {median * 1000:7.2f} ms  {median / direct:5.2f}x")


if __name__ == "__main__":
    uvloop.run(main())
