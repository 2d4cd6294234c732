"""Models named by URL, measured:

    python bench/models.py [--size-mib 512] [--rounds 5] [--runs 200]

1. Download throughput: the agent's downloader (agent/models: the address guard, sha256 and the write to the
   models folder included) against curl fetching the same file from the same local server (aiohttp's static
   files, sendfile, in a process of its own), alternated; median MiB/s of each and their ratio.
2. Ten runs naming one model at once, on five instances sharing one folder (two runs each): how many
   downloads, and how each run got the model.
3. A run naming a cached model by URL against the same run naming a model placed by hand, through an agent in
   front of the test double (which lists the models folder as ComfyUI does), alternated: the price of the URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from common import REPO, free_port, start_agent, start_double, wait_http
from overhead import agent_run, summary, timed

from agent.buckets.clients import Buckets
from agent.config import Settings
from agent.models.library import Models
from agent.models.refs import ModelRef

SERVE = """
import sys
from aiohttp import web
app = web.Application()
app.router.add_static("/", sys.argv[1])
web.run_app(app, host="127.0.0.1", port=int(sys.argv[2]), print=None, access_log=None)
"""
TXT2IMG = json.loads((REPO / "comfyui" / "workflows" / "txt2img.json").read_text())["graph"]


def write_model(path: Path, size: int) -> None:
    """A safetensors file of `size` bytes of random weights, written a block at a time."""
    header = json.dumps({"w": {"dtype": "U8", "shape": [size - 64], "data_offsets": [0, size - 64]}}).encode()
    header += b" " * (64 - 8 - len(header))
    with path.open("wb") as out:
        out.write(struct.pack("<Q", len(header)) + header)
        for start in range(0, size - 64, 8 << 20):
            out.write(os.urandom(min(8 << 20, size - 64 - start)))


@contextlib.contextmanager
def file_server(folder: Path) -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(folder), str(port)])
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


def models_in(folder: Path) -> Models:
    settings = Settings(models_dir=folder, url_allow_hosts=frozenset({"127.0.0.1"}))
    return Models(settings.models, Buckets.from_settings(settings.buckets, {}))


async def agent_download(url: str, scratch: Path) -> float:
    shutil.rmtree(scratch, ignore_errors=True)
    models = models_in(scratch)
    try:
        started = time.perf_counter()
        await models.pull(ModelRef("", "url", "checkpoints", url), lambda *_: None, "bench")
        return time.perf_counter() - started
    finally:
        await models.close()


async def curl_download(url: str, scratch: Path) -> float:
    scratch.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    curl = await asyncio.create_subprocess_exec("curl", "-sf", "-o", str(scratch / "model.safetensors"), url)
    assert await curl.wait() == 0
    return time.perf_counter() - started


async def throughput(url: str, size: int, rounds: int, scratch: Path) -> None:
    seconds: dict[str, list[float]] = {"agent": [], "curl": []}
    for serial in range(rounds):
        order = (("agent", agent_download), ("curl", curl_download))[::1 if serial % 2 else -1]
        for label, download in order:
            seconds[label].append(await download(url, scratch / label))
    mib = size / (1 << 20)
    speeds = {label: mib / statistics.median(found) for label, found in seconds.items()}
    print(f"| downloader | {mib:.0f} MiB, median |\n| --- | --- |")
    for label, speed in speeds.items():
        print(f"| {label} | {speed:.0f} MiB/s |")
    print(f"\nagent / curl: {speeds['agent'] / speeds['curl']:.2f}x\n")


async def ten_at_once(url: str, folder: Path) -> None:
    instances = [models_in(folder) for _ in range(5)]
    graph = {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": url}}}
    try:
        started = time.perf_counter()
        ended = await asyncio.gather(*(instances[index % 5].resolve(graph, lambda _: None, f"run-{index}")
                                       for index in range(10)))
        seconds = time.perf_counter() - started
    finally:
        for models in instances:
            await models.close()
    sources = Counter(str(fetched[0].source) for _, fetched in ended)
    print(f"ten runs, five instances, one model: {dict(sources)} in {seconds:.1f} s\n")


async def cached_against_placed(url: str, folder: Path, rounds: int) -> None:
    (folder / "models" / "checkpoints").mkdir(parents=True)
    config = folder / "extra_model_paths.yaml"
    config.write_text(json.dumps({"bench": {"base_path": str(folder / "models"), "checkpoints": "checkpoints"}}))
    models = folder / "models"
    double, comfy = start_double(folder, "--extra-model-paths-config", str(config))
    agent_proc, agent = start_agent(f"file://{folder / 'tasks'}", comfy, outputs=folder / "output",
                                    env={"MODELS_DIR": str(models), "URL_ALLOW_HOSTS": "127.0.0.1"})
    try:
        await wait_http(f"{agent}/readyz")
        async with aiohttp.ClientSession() as session:
            await agent_run(session, agent, _named(url, 0))  # the download, not measured
            placed = next((models / "checkpoints").iterdir()).name
            shutil.copy(models / "checkpoints" / placed, models / "checkpoints" / "placed.safetensors")
            samples: dict[str, list[float]] = {"placed by hand": [], "cached, named by URL": []}
            for serial in range(1, rounds + 1):
                for label, name in (("placed by hand", "placed.safetensors"),
                                    ("cached, named by URL", url))[::1 if serial % 2 else -1]:
                    samples[label].append(await timed(functools.partial(agent_run, session, agent,
                                                                        _named(name, serial))))
    finally:
        for proc in (agent_proc, double):
            proc.terminate()
            proc.wait(10)
    base = statistics.median(samples["placed by hand"])
    print("| checkpoint | one run at a time, median (p95) | / placed |\n| --- | --- | --- |")
    for label, found in samples.items():
        median, p95 = summary(found)
        print(f"| {label} | {median:.1f} ms ({p95:.1f}) | {median / base:.2f}x |")


def _named(checkpoint: str, seed: int) -> dict[str, Any]:
    graph = json.loads(json.dumps(TXT2IMG))
    graph["4"]["inputs"]["ckpt_name"] = checkpoint
    graph["3"]["inputs"].update(seed=seed, steps=1)
    return {"prompt": graph}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    size = args.size_mib << 20
    with tempfile.TemporaryDirectory() as temp:
        work = Path(temp)
        (work / "served").mkdir()
        write_model(work / "served" / "model.safetensors", size)
        write_model(work / "served" / "small.safetensors", 1 << 20)
        with file_server(work / "served") as server:
            await wait_http(f"{server}/small.safetensors")
            await throughput(f"{server}/model.safetensors", size, args.rounds, work / "scratch")
            await ten_at_once(f"{server}/model.safetensors", work / "shared")
            await cached_against_placed(f"{server}/small.safetensors", work / "agent", args.runs)


if __name__ == "__main__":
    uvloop.run(main())
