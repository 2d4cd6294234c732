"""The agent against a real ComfyUI (COMFYUI_DIR, COMFYUI_PYTHON), model-free workflows on the CPU."""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agent.workflows.catalog import list_inputs
from agent_process import AgentProcess, real_comfyui_agent
from procs import alive, state
from waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    with real_comfyui_agent(tmp_path_factory.mktemp("real"), URL_ALLOW_HOSTS="127.0.0.1") as process:
        yield process


def empty_image(color: int, prefix: str, width: int = 64, height: int = 48) -> dict[str, Any]:
    return {
        "1": {"class_type": "EmptyImage", "inputs": {"width": width, "height": height, "batch_size": 1,
                                                     "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


def decoded(body: dict[str, Any], node: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(body[node]["results"][0], validate=True))).convert("RGB")


def agent_nas(agent: AgentProcess) -> Path:
    return agent.log_path.parent / "nas"


def unique() -> int:
    return time.monotonic_ns() % 0xFFFFFF


def test_empty_image_to_save_image(agent: AgentProcess) -> None:
    color = unique()
    response = agent.run(empty_image(color, "it_empty"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"1", "2"}
    assert body["2"]["images"][0]["type"] == "output"
    image = decoded(body, "2")
    assert image.size == (64, 48)
    assert image.getpixel((5, 5)) == ((color >> 16) & 255, (color >> 8) & 255, color & 255)


def test_loadimage_chain_inverts_the_uploaded_file(agent: AgentProcess, tmp_path: Path) -> None:
    name = f"it_src_{unique()}.png"
    Image.new("RGB", (8, 8), (10, 200, 30)).save(agent_nas(agent) / "input" / name)
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "it_inverted"}},
    }
    response = agent.run(prompt)
    assert response.status_code == 200, response.text
    inverted = decoded(response.json(), "3").getpixel((4, 4))
    assert isinstance(inverted, tuple)
    assert all(abs(got - want) <= 1 for got, want in zip(inverted, (245, 55, 225), strict=True)), inverted


def test_preview_image_is_returned_like_a_saved_one(agent: AgentProcess) -> None:
    prompt = {"1": empty_image(unique(), "x")["1"],
              "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}
    response = agent.run(prompt)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["2"]["images"][0]["type"] == "temp"
    assert decoded(body, "2").size == (64, 48)


def test_invalid_prompt_is_comfyui_400_with_node_errors(agent: AgentProcess) -> None:
    prompt = empty_image(0, "x")
    prompt["1"]["inputs"]["width"] = 0
    response = agent.run(prompt)
    assert response.status_code == 400
    body = response.json()
    assert body["message"] == "PromptValidationError"
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"


def test_runtime_error_is_execution_error(agent: AgentProcess) -> None:
    name = f"it_corrupt_{unique()}.png"
    (agent_nas(agent) / "input" / name).write_bytes(b"this is not a png")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": name}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "it_bad"}},
    }
    response = agent.run(prompt)
    assert response.status_code == 500
    body = response.json()
    assert (body["message"], body["node_id"], body["node_type"]) == ("ExecutionError", "1", "LoadImage")
    assert body["exception_type"] == "PIL.UnidentifiedImageError"
    assert body["progress"]["1"]["max"] == 1


@pytest.fixture(scope="module")
def png_server() -> Iterator[str]:
    """A plain HTTP server in a thread, serving /PNG-of-(R,G,B) for any /R/G/B path."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            red, green, blue = (int(part) for part in self.path.strip("/").split("/"))
            buffer = io.BytesIO()
            Image.new("RGB", (8, 8), (red, green, blue)).save(buffer, format="PNG")
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.end_headers()
            self.wfile.write(buffer.getvalue())

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


def test_base64_and_url_inputs_are_uploaded_and_inverted(agent: AgentProcess, png_server: str) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), (10, 100, 250)).save(buffer, format="PNG")
    sources = {"1": base64.b64encode(buffer.getvalue()).decode(), "2": f"{png_server}/240/30/60"}
    prompt: dict[str, Any] = {}
    for node, value in sources.items():
        prompt[node] = {"class_type": "LoadImage", "inputs": {"image": value}}
        prompt[f"{node}1"] = {"class_type": "ImageInvert", "inputs": {"image": [node, 0]}}
        prompt[f"{node}2"] = {"class_type": "SaveImage", "inputs": {"images": [f"{node}1", 0],
                                                                  "filename_prefix": "it_input"}}
    response = agent.run(prompt)
    assert response.status_code == 200, response.text
    body = response.json()
    for node, expected in (("12", (245, 155, 5)), ("22", (15, 225, 195))):
        got = decoded(body, node).getpixel((4, 4))
        assert isinstance(got, tuple)
        assert all(abs(a - b) <= 1 for a, b in zip(got, expected, strict=True)), (node, got)


def long_chain(color: int) -> dict[str, Any]:
    prompt: dict[str, Any] = {"1": {"class_type": "EmptyImage", "inputs": {
        "width": 2048, "height": 2048, "batch_size": 2, "color": color}}}
    previous = "1"
    for index in range(8):
        node = str(100 + index)
        size = 4096 if index % 2 == 0 else 2048
        prompt[node] = {"class_type": "ImageScale", "inputs": {
            "image": [previous, 0], "upscale_method": "lanczos", "width": size, "height": size, "crop": "disabled"}}
        previous = node
    prompt["900"] = {"class_type": "SaveImage", "inputs": {"images": [previous, 0], "filename_prefix": "it_long"}}
    return prompt


def test_comfyui_killed_mid_run_then_restarted(agent: AgentProcess) -> None:
    comfyui = agent.comfyui_pid()
    caller, reply = agent.run_in_background(long_chain(unique()))
    agent.wait_comfyui(lambda queue: queue["queue_running"], "the long chain executing", path="/queue", timeout=60)
    os.kill(comfyui, signal.SIGKILL)
    caller.join(120)  # without noticing the death, the run would wait out RUN_TIMEOUT (an hour)
    response = reply["response"]
    assert response.status_code == 502, response.text
    assert response.json()["message"] == "ComfyUICrashed"
    assert not alive(comfyui) and state(comfyui) is None, "the killed ComfyUI must be reaped, not a zombie"
    agent.wait_ready(120)
    assert agent.comfyui_pid() != comfyui
    assert agent.run(empty_image(unique(), "it_after_restart")).status_code == 200


def test_the_node_catalog_is_published_for_gateways(agent: AgentProcess) -> None:
    published = agent.log_path.parent / "tasks" / "object-info.shared"  # the agent's file store
    wait_for(published.exists, 60, "the agent to publish ComfyUI's node catalog")
    catalog = json.loads(published.read_bytes())
    assert "euler" in list_inputs(catalog["KSampler"])["sampler_name"]
    assert "ckpt_name" in list_inputs(catalog["CheckpointLoaderSimple"])


def test_a_model_put_on_the_nas_is_listed_by_a_comfyui_installed_by_hand(agent: AgentProcess) -> None:
    """The checkout has no extra_model_paths.yaml of its own: the agent tells ComfyUI of the NAS folders."""
    name = f"on-nas-{unique()}.safetensors"
    (agent_nas(agent) / "models" / "checkpoints" / name).write_bytes(b"not loaded, only listed")

    def listed() -> bool:
        return name in list_inputs(agent.comfyui("/object_info/CheckpointLoaderSimple")["CheckpointLoaderSimple"])[
            "ckpt_name"]

    wait_for(listed, 30, f"ComfyUI to list {name}")
