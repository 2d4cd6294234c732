"""Input files through the agent and the double: the bad-input matrix, and good inputs reaching ComfyUI."""

from __future__ import annotations

import base64
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from agent_harness import running_agent, serving
from double_helpers import double_info
from files_server import FilesServer, png, wav

Client = TestClient[web.Request, web.Application]
LIMIT = 200_000


@pytest.fixture
async def files() -> AsyncIterator[tuple[FilesServer, str]]:
    server = FilesServer()
    async with serving(server.app()) as url:
        yield server, url


@pytest.fixture
async def agent(double: str) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, url_allow_hosts=frozenset({"127.0.0.1"}),
                             input_max_bytes=LIMIT, input_fetch_timeout=1.0) as client:
        yield client


def loading(*values: str, node_class: str = "LoadImage") -> dict[str, Any]:
    """One loader per value, each saved by its own SaveImage."""
    prompt: dict[str, Any] = {}
    for index, value in enumerate(values, start=1):
        inputs = {"image": value} if node_class != "LoadImageMask" else {"image": value, "channel": "red"}
        prompt[f"{index}0"] = {"class_type": node_class, "inputs": inputs}
        source = [f"{index}0", 0]
        if node_class == "LoadImageMask":
            prompt[f"{index}1"] = {"class_type": "MaskToImage", "inputs": {"mask": source}}
            source = [f"{index}1", 0]
        prompt[f"{index}9"] = {"class_type": "SaveImage", "inputs": {"images": source, "filename_prefix": f"in{index}"}}
    return prompt


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


BAD_INPUTS: list[tuple[str, str, str]] = [
    ("bad base64 in a data URL", "data:image/png;base64,@@@@####", "invalid base64"),
    ("data URL without base64", "data:image/png,%89PNG", "only base64 data URLs"),
    ("empty data URL", "data:image/png;base64,", "empty file"),
    ("bare base64 of text", b64(b"just some text, not a picture at all " * 4), "not an image file"),
    ("data URL of HTML", f"data:text/html;base64,{b64(b'<html><body>hi</body></html>')}", "not an image file"),
    ("a sound given to LoadImage", f"data:audio/wav;base64,{b64(wav())}", "(it is audio/wav)"),
    ("inline data over the limit", f"data:image/png;base64,{b64(png((1, 1, 1)) + bytes(LIMIT))}", "-byte limit"),
    ("URL answering 404", "{files}/missing", "HTTP 404"),
    ("URL of HTML served as image/png", "{files}/html", "not an image file"),
    ("URL declaring a body over the limit", "{files}/big/500000", "-byte limit (500000 bytes)"),
    ("URL with an endless body", "{files}/endless", "-byte limit"),
    ("URL that never answers", "{files}/slow", "timed out"),
    ("URL redirected to the metadata service", "{files}/to?url=http%3A%2F%2F100.100.100.200%2Flatest", "refused"),
    ("URL redirected to link-local", "{files}/to?url=http%3A%2F%2F169.254.169.254%2F", "link-local"),
    ("URL redirected to a name of loopback", "{files}/to?url=http%3A%2F%2Flocalhost%3A{port}%2Fpng%2F1%2F2%2F3",
     "loopback"),
    ("URL on a private network", "http://10.1.2.3/a.png", "private"),
    ("URL with too many redirects", "{files}/hop/9", "redirects"),
    ("ftp URL", "ftp://example.com/a.png", "only http, https, oss and s3"),
    ("file URL", "file:///etc/passwd", "only http, https, oss and s3"),
    ("URL with credentials", "http://user:secret@127.0.0.1:{port}/png/1/2/3", "credentials"),
]


@pytest.mark.parametrize(("case", "value", "reason"), BAD_INPUTS, ids=[case for case, _, _ in BAD_INPUTS])
async def test_bad_input_is_400_naming_node_and_input_and_comfyui_gets_nothing(
        agent: Client, double: str, files: tuple[FilesServer, str], case: str, value: str, reason: str) -> None:
    _, url = files
    prompt = loading("example.png", value.format(files=url, port=url.rsplit(":", 1)[1]))
    response = await agent.post("/api/run", json=prompt)
    body = await response.json()
    assert response.status == 400, body
    assert body["message"] == "InputImageError"
    assert (body["node_id"], body["input"]) == ("20", "image")
    assert reason in body["reason"] and body["error"].startswith("node 20, input 'image': ")
    assert "secret" not in body["error"]
    info = await double_info(double)
    assert (info["prompts_received"], info["uploads"]) == (0, 0)


async def test_mask_loader_failure_names_its_node(agent: Client, double: str, files: tuple[FilesServer, str]) -> None:
    _, url = files
    response = await agent.post("/api/run", json=loading(f"{url}/missing", node_class="LoadImageMask"))
    assert response.status == 400
    assert (await response.json())["node_id"] == "10"


def first_pixel(body: dict[str, Any], node: str) -> tuple[int, ...]:
    image = Image.open(io.BytesIO(base64.b64decode(body[node]["results"][0]))).convert("RGB")
    return tuple(image.getpixel((0, 0)))  # type: ignore[arg-type]


async def test_base64_data_url_and_url_inputs_reach_comfyui(agent: Client, double: str,
                                                            files: tuple[FilesServer, str]) -> None:
    _, url = files
    prompt = loading(b64(png((200, 10, 10))), f"data:image/png;base64,{b64(png((10, 200, 10)))}",
                     f"{url}/png/10/10/200")
    response = await agent.post("/api/run", json=prompt)
    body = await response.json()
    assert response.status == 200, body
    assert [first_pixel(body, node) for node in ("19", "29", "39")] == [(200, 10, 10), (10, 200, 10), (10, 10, 200)]
    assert prompt["10"]["inputs"]["image"] == b64(png((200, 10, 10))), "the caller's prompt is not modified"


async def test_same_url_and_same_bytes_are_fetched_and_uploaded_once(agent: Client, double: str,
                                                                   files: tuple[FilesServer, str]) -> None:
    server, url = files
    same = f"{url}/png/1/2/3"
    response = await agent.post("/api/run", json=loading(same, same, b64(png((1, 2, 3)))))
    assert response.status == 200
    assert server.hits["/png/1/2/3"] == 1
    assert (await double_info(double))["uploads"] == 1


async def test_mask_loader_takes_a_url(agent: Client, files: tuple[FilesServer, str]) -> None:
    _, url = files
    response = await agent.post("/api/run", json=loading(f"{url}/png/255/0/0", node_class="LoadImageMask"))
    body = await response.json()
    assert response.status == 200, body
    assert first_pixel(body, "19") == (255, 255, 255)


async def test_plain_file_names_go_through_untouched(agent: Client, double: str, tmp_path: Path) -> None:
    inputs = tmp_path / "comfyui" / "input"
    (inputs / "sub").mkdir(parents=True, exist_ok=True)
    (inputs / "mine.png").write_bytes(png((40, 50, 60)))
    (inputs / "sub" / "other.png").write_bytes(png((70, 80, 90)))
    response = await agent.post("/api/run", json=loading("mine.png", "sub/other.png", "mine.png [input]"))
    body = await response.json()
    assert response.status == 200, body
    assert [first_pixel(body, node) for node in ("19", "29", "39")] == [(40, 50, 60), (70, 80, 90), (40, 50, 60)]
    assert (await double_info(double))["uploads"] == 0


async def test_the_caller_headers_never_reach_the_url(double: str, files: tuple[FilesServer, str]) -> None:
    server, url = files
    async with running_agent(comfyui_url=double, url_allow_hosts=frozenset({"127.0.0.1"}),
                             agent_token=None) as agent:
        response = await agent.post("/api/run", json=loading(f"{url}/png/9/9/9"), headers={
            "Authorization": "Bearer caller-secret", "Cookie": "a=b", "x-fc-access-key-secret": "k"})
        assert response.status == 200
    sent = server.headers[-1]
    assert not {"Authorization", "Cookie", "x-fc-access-key-secret"} & set(sent)
