"""Input URLs of one prompt are fetched at once: four 2 MB images should take about the time of one.

    python bench/inputs.py [--latency 0.25] [--size 2000000] [--repeat 5]

A local server answers each request after `latency` seconds (a far-away host), with a 2 MB PNG-headed file;
the agent's input preparer fetches, checks and uploads them to the test double, as in a run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

import aiohttp  # noqa: E402

from agent.buckets.clients import Buckets  # noqa: E402
from agent.comfy.client import ComfyClient  # noqa: E402
from agent.config import Settings  # noqa: E402
from agent.inputs.prepare import InputPreparer  # noqa: E402
from agent_harness import serving  # noqa: E402
from comfy_double.harness import start_double  # noqa: E402
from files_server import FilesServer  # noqa: E402


def prompt(url: str, count: int, size: int, round_: int) -> dict[str, Any]:
    return {str(index): {"class_type": "LoadImage", "inputs": {"image": f"{url}/big/{size}?n={round_}-{index}"}}
            for index in range(count)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=2_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        runner, comfy = await start_double(Path(temp))
        files = FilesServer(delay=args.latency)
        try:
            async with serving(files.app()) as url, aiohttp.ClientSession() as session:
                settings = Settings(comfyui_url=comfy, url_allow_hosts=frozenset({"127.0.0.1"}))
                preparer = InputPreparer(settings.inputs, ComfyClient(comfy, session, connections=64),
                                         Buckets.from_settings(settings.buckets))
                timings: dict[int, list[float]] = {1: [], 4: []}
                for round_ in range(args.repeat):
                    for count in (1, 4):
                        started = time.perf_counter()
                        await preparer.prepare(prompt(url, count, args.size, round_))
                        timings[count].append(time.perf_counter() - started)
                await preparer.close()
        finally:
            await runner.cleanup()
    one, four = statistics.median(timings[1]), statistics.median(timings[4])
    print(f"{args.size / 1e6:.1f} MB per image, {args.latency * 1000:.0f} ms server latency, "
          f"median of {args.repeat}")
    print("| inputs | seconds |")
    print("| --- | --- |")
    print(f"| 1 URL | {one:.3f} |")
    print(f"| 4 URLs | {four:.3f} |")
    print(f"4 / 1: {four / one:.2f}x (sequential fetching would be about 4x)")


if __name__ == "__main__":
    asyncio.run(main())
