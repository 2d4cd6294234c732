"""How long `/healthz` waits while the agent takes a maximum-size base64 input, against the same without it.

    python bench/input_lag.py [--comfyui-url URL] [--posts 5] [--interval 0.005]

A prober asks `/healthz` every `interval` seconds and times each answer: alone (idle), then while `posts` runs
are posted one after another by another process, each with one LoadImage holding bare base64: at the input cap
(INPUT_MAX_BYTES, 20 MiB by default: decoded, checked, uploaded to ComfyUI, run), and 10 % over it (refused with
400 from the text's length). The agent runs as its own process; max and p99 of the answers' latency are printed
for each phase: while the agent works, they are its event loop's stalls as a caller feels them.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import aiohttp  # noqa: E402
from common import comfy_and_agent, wait_http  # noqa: E402

from agent.config import Settings  # noqa: E402
from files_server import png  # noqa: E402

MAX_BYTES = Settings.model_fields["input_max_bytes"].default


def body_of(size: int) -> bytes:
    """A prompt loading a PNG padded to `size` bytes (a PNG reader stops at its end marker) as bare base64."""
    head = png((30, 60, 90))
    image = base64.b64encode(head + bytes(size - len(head))).decode()
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": image}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "lag"}}}
    return json.dumps(prompt).encode()


def post(agent: str, size: int, posts: int) -> None:
    """The poster, a process of its own so that its work never delays the prober: says `ready` once its body is
    made, posts it `posts` times once told to on stdin, and prints each status."""
    body = body_of(size)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(posts):
        request = urllib.request.Request(f"{agent}/api/run", data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=600) as response:
                print(response.status, flush=True)
        except urllib.error.HTTPError as error:
            print(error.code, flush=True)


async def probe(agent: str, interval: float, stop: asyncio.Event) -> list[float]:
    """Milliseconds each `/healthz` took, asked every `interval` seconds until `stop`."""
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            started = time.perf_counter()
            async with session.get(f"{agent}/healthz") as response:
                await response.read()
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(interval)
    return latencies


async def posting(agent: str, interval: float, size: int, posts: int) -> tuple[list[float], list[str]]:
    """/healthz latencies while `posts` runs with an input of `size` bytes are posted, and their statuses."""
    poster = await asyncio.create_subprocess_exec(sys.executable, __file__, "--post", agent, str(size), str(posts),
                                                  stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    assert poster.stdin is not None and poster.stdout is not None
    await poster.stdout.readline()
    stop = asyncio.Event()
    prober = asyncio.ensure_future(probe(agent, interval, stop))
    poster.stdin.write(b"go\n")
    statuses = (await poster.stdout.read()).decode().split()
    await poster.wait()
    stop.set()
    return await prober, statuses


async def idle(agent: str, interval: float, seconds: float) -> list[float]:
    stop = asyncio.Event()
    prober = asyncio.ensure_future(probe(agent, interval, stop))
    await asyncio.sleep(seconds)
    stop.set()
    return await prober


def row(label: str, latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"| {label} | {len(ordered)} | {statistics.median(ordered):.1f} | {p99:.1f} | {ordered[-1]:.1f} |"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--posts", type=int, default=5, help="runs posted per phase")
    parser.add_argument("--interval", type=float, default=0.005, help="seconds between two /healthz")
    args = parser.parse_args()
    with comfy_and_agent(args.comfyui_url) as (_, _, agent):
        await wait_http(f"{agent}/readyz")
        started = time.perf_counter()
        at_cap, at_cap_statuses = await posting(agent, args.interval, MAX_BYTES, args.posts)
        seconds = time.perf_counter() - started
        over_cap, over_cap_statuses = await posting(agent, args.interval, MAX_BYTES * 11 // 10, args.posts)
        alone = await idle(agent, args.interval, seconds)
    print(f"/healthz every {args.interval * 1000:g} ms; {args.posts} runs posted one after another per phase, "
          f"bare base64 of a {MAX_BYTES}-byte input (the cap) and of one 10 % larger")
    print("| while | answers | median ms | p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- |")
    print(row("nothing else (idle)", alone))
    print(row(f"runs with an input at the cap (statuses {' '.join(sorted(set(at_cap_statuses)))})", at_cap))
    print(row(f"runs with an input over the cap (statuses {' '.join(sorted(set(over_cap_statuses)))})", over_cap))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--post"]:
        post(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        asyncio.run(main())
