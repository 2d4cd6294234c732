"""What the benchmarks share: an agent process to measure, and waiting for a server to answer."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
DOUBLE = REPO / "tests" / "comfy_double" / "main.py"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_agent(store: str, comfy: str, cpu: int | None = None, outputs: Path | None = None,
                env: dict[str, str] | None = None, checkout: Path = REPO) -> tuple[subprocess.Popen[bytes], str]:
    """The agent as its own process attached to `comfy`, optionally pinned to one CPU; returns it and its URL.
    `outputs`: ComfyUI's output folder, which the agent then reads as it does beside the ComfyUI it launches
    (`COMFYUI_OUTPUT_DIR` in the environment names it for a ComfyUI started elsewhere). `env`: more settings.
    `checkout`: the agent of another checkout (an earlier commit, measured beside this one)."""
    port = free_port()
    env = {**os.environ, "AGENT_HOST": "127.0.0.1", "AGENT_PORT": str(port), "TASK_STORE": store,
           "LOG_LEVEL": "warning", "COMFYUI_URL": comfy, **(env or {})}
    if outputs is not None:
        env["COMFYUI_OUTPUT_DIR"] = str(outputs)
    command = [sys.executable, "-m", "agent"]
    if cpu is not None:
        command = ["taskset", "-c", str(cpu), *command]
    proc = subprocess.Popen(command, cwd=checkout, env={**env, "PYTHONPATH": str(checkout)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


async def wait_http(url: str, timeout: float = 60) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(int(timeout * 10)):
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def tiny_prompt(serial: int) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 1,
                                                     "color": serial % 0xFFFFFF}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "bench"}},
    }


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU the process has used: its cost, whatever the machine's other load does to latency."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_double(workdir: Path, *more: str) -> tuple[subprocess.Popen[bytes], str]:
    """`more`: ComfyUI's own flags (`--extra-model-paths-config FILE`)."""
    port = free_port()
    args = [sys.executable, str(DOUBLE), "--listen", "127.0.0.1", "--port", str(port), *more]
    for kind in ("input", "output", "temp"):
        args += [f"--{kind}-directory", str(workdir / kind)]
    proc = subprocess.Popen(args, cwd=DOUBLE.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, f"http://127.0.0.1:{port}"


class DirectClient:
    """ComfyUI driven the way one careful client would, what the agent is measured against: one socket, every
    prompt submitted under its clientId, every message read, each output image read back as base64."""

    def __init__(self, session: aiohttp.ClientSession, comfy: str) -> None:
        self.session = session
        self.comfy = comfy
        self.client_id = uuid.uuid4().hex
        self._ends: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}
        self._images: dict[str, list[dict[str, Any]]] = {}
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def __aenter__(self) -> DirectClient:
        url = f"{self.comfy.replace('http', 'ws', 1)}/ws?clientId={self.client_id}"
        self._socket = await self.session.ws_connect(url, max_msg_size=0)
        await self._socket.receive()
        self._reader = asyncio.ensure_future(self._read(self._socket))
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._socket is not None and self._reader is not None
        self._reader.cancel()
        await self._socket.close()

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        async for message in socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            data = event.get("data", {})
            prompt_id = data.get("prompt_id")
            if event["type"] == "executed":
                self._images.setdefault(prompt_id, []).extend(data["output"].get("images", []))
            elif event["type"] == "executing" and data.get("node") is None and prompt_id in self._ends:
                self._ends.pop(prompt_id).set_result(self._images.pop(prompt_id, []))

    async def run(self, prompt: dict[str, Any], encode: bool = True) -> None:
        """`encode`: base64 each image read back, as a reply that carries it must (else the raw bytes only)."""
        prompt_id = str(uuid.uuid4())
        end = self._ends[prompt_id] = asyncio.get_running_loop().create_future()
        payload = {"prompt": prompt, "client_id": self.client_id, "prompt_id": prompt_id}
        async with self.session.post(f"{self.comfy}/prompt", json=payload) as reply:
            await reply.read()
        for image in await end:
            async with self.session.get(f"{self.comfy}/view", params=image) as reply:
                data = await reply.read()
            if encode:
                base64.b64encode(data)


@contextlib.contextmanager
def comfy_and_agent(comfyui_url: str | None) -> Iterator[tuple[str, subprocess.Popen[bytes], str]]:
    """(ComfyUI's URL, the agent's process, its URL): the given ComfyUI or the double started here, and an agent
    in front of it with the file store in a temporary folder (`BENCH_TASK_STORE` names another store)."""
    with tempfile.TemporaryDirectory() as temp:
        workdir = Path(temp)
        procs = []
        comfy, outputs = comfyui_url, None
        if comfy is None:
            double, comfy = start_double(workdir)
            procs.append(double)
            outputs = workdir / "output"
        store = os.environ.get("BENCH_TASK_STORE") or f"file://{workdir / 'tasks'}"
        agent_proc, agent = start_agent(store, comfy, outputs=outputs)
        procs.append(agent_proc)
        try:
            yield comfy, agent_proc, agent
        finally:
            for proc in procs:
                proc.terminate()
                proc.wait(10)
