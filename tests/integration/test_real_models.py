"""A model named by URL, on a real ComfyUI (COMFYUI_DIR, COMFYUI_PYTHON): the agent downloads a random-weight
upscale model the test writes with ComfyUI's own torch and spandrel, ComfyUI lists it from the NAS without a
restart, loads it and upscales with it; a second run finds it in place; and a random-weight Stable Diffusion 1.5
checkpoint (2 GB) named by URL in CheckpointLoaderSimple makes a one-step image."""

from __future__ import annotations

import base64
import functools
import http.server
import io
import json
import os
import subprocess
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from agent_process import AgentProcess, real_comfyui_agent
from integration.random_checkpoint import write_checkpoint

pytestmark = pytest.mark.integration

WRITE_MODEL = """
import sys
from safetensors.torch import save_file
from spandrel.architectures.Compact import Compact
save_file(Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=2).state_dict(), sys.argv[1])
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    with real_comfyui_agent(tmp_path_factory.mktemp("real-models"), URL_ALLOW_HOSTS="127.0.0.1") as process:
        yield process


@pytest.fixture(scope="module")
def upscaler(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("model") / "upscaler.safetensors"
    subprocess.run([os.environ["COMFYUI_PYTHON"], "-c", WRITE_MODEL, str(path)], check=True, timeout=120)
    return path.read_bytes()


@pytest.fixture(scope="module")
def model_server(upscaler: bytes) -> Iterator[tuple[str, Counter[str]]]:
    hits: Counter[str] = Counter()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits[self.path] += 1
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(upscaler)))
            self.end_headers()
            self.wfile.write(upscaler)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()


def upscaling(model: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 12, "batch_size": 1, "color": 0x336699}},
        "2": {"class_type": "UpscaleModelLoader", "inputs": {"model_name": model}},
        "3": {"class_type": "ImageUpscaleWithModel", "inputs": {"upscale_model": ["2", 0], "image": ["1", 0]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "it_upscaled"}},
    }


def task(agent: AgentProcess, task_id: str) -> dict[str, Any]:
    reply = agent.http.get(f"/api/tasks/{task_id}")
    assert reply.status_code == 200, reply.text
    found: dict[str, Any] = reply.json()
    return found


def test_real_comfyui_runs_a_model_pulled_by_url(agent: AgentProcess, model_server: tuple[str, Counter[str]],
                                                 upscaler: bytes) -> None:
    url, hits = model_server
    response = agent.run(upscaling(f"{url}/upscalers/tiny-2x.safetensors"), headers={"task-id": "real-model-1"})
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["4"]["results"][0])))
    assert image.size == (32, 24)  # the model's 2x, as ComfyUI ran it
    fetched = task(agent, "real-model-1")["models"]
    assert [(model["folder"], model["source"], model["bytes"]) for model in fetched] == [
        ("upscale_models", "downloaded", len(upscaler))]
    name = fetched[0]["name"]
    listed = httpx.get(f"{agent.comfyui_url}/object_info/UpscaleModelLoader", timeout=30).json()
    kind, *more = listed["UpscaleModelLoader"]["input"]["required"]["model_name"]
    # a list of choices, or (ComfyUI's newer node schema) "COMBO" with the choices among its options
    assert name in (kind if isinstance(kind, list) else more[0]["options"])
    assert (agent.log_path.parent / "nas" / "models" / "upscale_models" / name).read_bytes() == upscaler

    again = agent.run(upscaling(f"{url}/upscalers/tiny-2x.safetensors"), headers={"task-id": "real-model-2"})
    assert again.status_code == 200, again.text
    assert task(agent, "real-model-2")["models"][0]["source"] == "cached"
    assert hits["/upscalers/tiny-2x.safetensors"] == 1


def test_real_comfyui_never_sees_a_refused_model(agent: AgentProcess, model_server: tuple[str, Counter[str]],
                                                 tmp_path: Path) -> None:
    url, _ = model_server
    response = agent.run(upscaling(f"{url}/upscalers/tiny-2x.safetensors#sha256={'0' * 64}"))
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "ModelError" and (body["node_id"], body["input"]) == ("2", "model_name")
    assert "checksum mismatch" in body["reason"]


@pytest.fixture(scope="module")
def checkpoint_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A random-weight SD1.5 checkpoint, served from its folder (streamed: it is 2 GB)."""
    folder = tmp_path_factory.mktemp("checkpoints")
    write_checkpoint(folder / "sd15-random.safetensors")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


def test_real_comfyui_runs_a_checkpoint_pulled_by_url(agent: AgentProcess, checkpoint_server: str) -> None:
    """The issue's case: a Stable Diffusion checkpoint named by URL in CheckpointLoaderSimple, one 64x64 step."""
    graph = json.loads((Path(__file__).parents[2] / "comfyui" / "workflows" / "txt2img.json").read_text())["graph"]
    graph["4"]["inputs"]["ckpt_name"] = f"{checkpoint_server}/sd15-random.safetensors"
    graph["3"]["inputs"].update(steps=1, seed=7)
    graph["5"]["inputs"].update(width=64, height=64, batch_size=1)
    response = agent.run(graph, headers={"task-id": "real-checkpoint"}, timeout=300)
    assert response.status_code == 200, response.text
    assert Image.open(io.BytesIO(base64.b64decode(response.json()["9"]["results"][0]))).size == (64, 64)
    fetched = task(agent, "real-checkpoint")["models"]
    assert [(model["folder"], model["source"]) for model in fetched] == [("checkpoints", "downloaded")]
    assert fetched[0]["bytes"] > 2_000_000_000 and fetched[0]["name"].endswith("-sd15-random.safetensors")
