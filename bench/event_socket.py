"""Which websocket client the agent's one event connection to ComfyUI should use: `websockets` or aiohttp's.

    python bench/event_socket.py                      # against the test double (started here)
    python bench/event_socket.py --comfyui-url URL    # against a running ComfyUI

One connection per library, the way the agent holds it: one clientId, the metadata feature flag, every prompt of a
burst submitted under that clientId (by another process, so that this one only reads), every frame read until
each prompt's `executing` null. This process's CPU time is then the client library's cost of the frames. Rounds
alternate between the libraries; the medians are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import uvloop
import websockets
from common import start_double, wait_http

FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
Reader = Callable[[str, set[str]], Awaitable[int]]


def _done(frame: str | bytes, waiting: set[str]) -> None:
    if isinstance(frame, str) and '"executing"' in frame:
        data = json.loads(frame)["data"]
        if data.get("node") is None:
            waiting.discard(data.get("prompt_id"))


async def with_websockets(url: str, waiting: set[str], submit: Callable[[], Awaitable[None]]) -> int:
    frames = 0
    async with websockets.connect(url, max_size=None, compression=None) as socket:
        await socket.send(FLAGS)
        await socket.recv()
        await submit()
        while waiting:
            _done(await socket.recv(), waiting)
            frames += 1
    return frames


async def with_aiohttp(url: str, waiting: set[str], submit: Callable[[], Awaitable[None]]) -> int:
    frames = 0
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0, compress=0) as socket:
        await socket.send_str(FLAGS)
        await socket.receive()
        await submit()
        while waiting:
            message = await socket.receive()
            _done(message.data, waiting)
            frames += 1
    return frames


SUBMITTER = """
import asyncio, json, sys, aiohttp
sys.path.insert(0, {bench!r})
from common import tiny_prompt
async def main():
    async with aiohttp.ClientSession() as session:
        async def one(index):
            payload = {{"prompt": tiny_prompt({serial} + index), "client_id": {client_id!r},
                       "prompt_id": f"{client_id}-{{index}}"}}
            async with session.post({comfy!r} + "/prompt", json=payload) as response:
                await response.read()
        await asyncio.gather(*(one(index) for index in range({runs})))
asyncio.run(main())
"""


async def burst(comfy: str, library: Callable[..., Awaitable[int]], runs: int, serial: int) -> tuple[float, float, int]:
    client_id = uuid.uuid4().hex
    waiting = {f"{client_id}-{index}" for index in range(runs)}

    async def submit() -> None:
        code = SUBMITTER.format(bench=str(Path(__file__).parent), serial=serial, client_id=client_id, comfy=comfy,
                                runs=runs)
        await asyncio.create_subprocess_exec(sys.executable, "-c", code)

    started, cpu = time.perf_counter(), time.process_time()
    frames = await library(f"{comfy.replace('http', 'ws', 1)}/ws?clientId={client_id}", waiting, submit)
    return time.perf_counter() - started, time.process_time() - cpu, frames


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--runs", type=int, default=256, help="prompts per burst")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        double = None
        comfy = args.comfyui_url
        if comfy is None:
            double, comfy = start_double(Path(temp))
        try:
            await wait_http(f"{comfy}/system_stats")
            libraries = {"websockets": with_websockets, "aiohttp": with_aiohttp}
            results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in libraries}
            for round_ in range(args.rounds + 1):
                for name, library in libraries.items():
                    sample = await burst(comfy, library, args.runs, (round_ * 2 + len(results[name])) * args.runs)
                    if round_:  # the first round warms both up
                        results[name].append(sample)
            print(f"{args.runs} prompts per burst, {args.rounds} bursts per library, one connection each")
            print("| library | wall s (median) | reader CPU ms (median) | frames | CPU µs per frame |")
            print("| --- | --- | --- | --- | --- |")
            for name, samples in results.items():
                wall = statistics.median(sample[0] for sample in samples)
                cpu = statistics.median(sample[1] for sample in samples)
                frames = statistics.median(sample[2] for sample in samples)
                print(f"| {name} | {wall:.3f} | {cpu * 1000:.0f} | {frames:.0f} | {cpu / frames * 1e6:.1f} |")
        finally:
            if double is not None:
                double.terminate()
                double.wait(10)


if __name__ == "__main__":
    uvloop.run(main())
