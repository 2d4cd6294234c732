"""What delivering a big output costs: a 4-megapixel noise PNG, through the agent into an S3 server, against
running the prompt straight on ComfyUI and fetching the file raw from `/view`, in the same run.

    python bench/outputs.py [--comfyui-url URL --comfyui-output-dir DIR] [--runs 10] [--megapixels 4]

The S3 server is moto's server mode on 127.0.0.1 (started here). The prompt loads the noise image and saves
it again (`LoadImage` → `SaveImage`, a new file name each run so that ComfyUI saves every time); the agent
answers with `delivery: url` (the upload done, the URL signed) and with `delivery: base64`. Runs alternate
between the paths.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from common import DirectClient, free_port, start_agent, start_double, wait_http
from PIL import Image

NOISE = "bench-noise.png"


def noise_png(megapixels: float) -> bytes:
    side = int((megapixels * 1e6) ** 0.5)
    buffer = io.BytesIO()
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def save_noise(prefix: str) -> dict[str, Any]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": NOISE}},
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def start_s3() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return server, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("moto's server did not start")


async def timed(call: Any) -> float:
    started = time.perf_counter()
    await call
    return time.perf_counter() - started


async def agent_run(session: aiohttp.ClientSession, agent: str, delivery: str) -> None:
    body = {"prompt": save_noise("bench"), "options": {"output": {"delivery": delivery}}}
    async with session.post(f"{agent}/api/run", json=body) as reply:
        data = await reply.read()
        if reply.status != 200:
            raise RuntimeError(f"agent run failed: {data[:300]!r}")


async def measure(comfy: str, agent: str, runs: int, png: bytes) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {"direct": [], "url": [], "base64": []}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as session:
        form = aiohttp.FormData()
        form.add_field("image", png, filename=NOISE, content_type="image/png")
        form.add_field("overwrite", "true")
        async with session.post(f"{comfy}/upload/image", data=form) as reply:
            reply.raise_for_status()
        await wait_http(f"{agent}/readyz")
        async with DirectClient(session, comfy) as direct:
            for round_ in range(runs + 2):  # the first two warm both paths up
                times = {"direct": await timed(direct.run(save_noise(f"direct-{uuid.uuid4().hex[:8]}"),
                                                          encode=False)),
                         "url": await timed(agent_run(session, agent, "url")),
                         "base64": await timed(agent_run(session, agent, "base64"))}
                if round_ >= 2:
                    for path, seconds in times.items():
                        samples[path].append(seconds)
    return samples


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--comfyui-url", help="a running ComfyUI; default: start the test double")
    parser.add_argument("--comfyui-output-dir", type=Path, help="that ComfyUI's output folder")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--megapixels", type=float, default=4.0)
    args = parser.parse_args()
    png = noise_png(args.megapixels)
    with tempfile.TemporaryDirectory() as temp:
        procs: list[subprocess.Popen[bytes]] = []
        comfy, outputs = args.comfyui_url, args.comfyui_output_dir
        if comfy is None:
            double, comfy = start_double(Path(temp))
            procs.append(double)
            outputs = Path(temp) / "output"
        s3, endpoint = start_s3()
        procs.append(s3)
        bucket = "bench"
        async with aiohttp.ClientSession() as session, session.put(f"{endpoint}/{bucket}") as created:
            created.raise_for_status()
        os.environ.update({"OUTPUT_STORE": f"s3://{bucket}/out", "OUTPUT_STORE_ENDPOINT": endpoint,
                           "OUTPUT_STORE_ACCESS_KEY_ID": "bench", "OUTPUT_STORE_ACCESS_KEY_SECRET": "bench"})
        agent_proc, agent = start_agent(f"file://{temp}/tasks", comfy, outputs=outputs)
        procs.append(agent_proc)
        try:
            await wait_http(f"{comfy}/system_stats")
            samples = await measure(comfy, agent, args.runs, png)
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
    direct = statistics.median(samples["direct"])
    print(f"{len(png) / 1e6:.1f} MB noise PNG ({args.megapixels:g} MP), median of {args.runs} runs per path")
    print("| path | median s | / direct |")
    print("| --- | --- | --- |")
    for path, label in (("direct", "direct: prompt, then the file raw from /view"),
                        ("url", "agent, `delivery: url` (uploaded, URL signed)"),
                        ("base64", "agent, `delivery: base64`")):
        median = statistics.median(samples[path])
        print(f"| {label} | {median:.3f} | {median / direct:.2f}x |")


if __name__ == "__main__":
    uvloop.run(main())
