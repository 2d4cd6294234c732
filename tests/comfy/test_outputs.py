"""Outputs read from ComfyUI's folders beside it, names checked as ComfyUI's `/view` checks them, and `/view`
asked for what is not where it should be."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.comfy.outputs import INLINE_BYTES, ComfyFiles
from agent_harness import running_agent


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as opened:
        yield opened


def files(session: aiohttp.ClientSession, url: str, **folders: Path) -> ComfyFiles:
    return ComfyFiles(ComfyClient(url, session, 4), folders)


@pytest.mark.parametrize("size", [100, INLINE_BYTES + 1], ids=["small-inline", "large-in-a-thread"])
async def test_a_file_in_a_known_folder_is_read_without_asking_comfyui(
        tmp_path: Path, session: aiohttp.ClientSession, size: int) -> None:
    (tmp_path / "sub").mkdir()
    data = os.urandom(size)
    (tmp_path / "sub" / "a_00001_.png").write_bytes(data)
    nobody = files(session, "http://127.0.0.1:9", output=tmp_path)  # nothing listens there
    assert await nobody.read({"filename": "a_00001_.png", "subfolder": "sub", "type": "output"}) == data


@pytest.mark.parametrize("image", [
    {"filename": "../secret.png", "subfolder": "", "type": "output"},
    {"filename": "/etc/passwd", "subfolder": "", "type": "output"},
    {"filename": "x.png", "subfolder": "../..", "type": "output"},
    {"filename": "x.png", "subfolder": "", "type": "input"},  # a type the agent was not told of
    {"filename": "", "subfolder": "", "type": "output"},
])
async def test_unsafe_or_unknown_names_are_not_files_of_the_agent(
        tmp_path: Path, session: aiohttp.ClientSession, image: dict[str, Any]) -> None:
    assert files(session, "http://127.0.0.1:9", output=tmp_path).path_of(image) is None


async def test_a_name_outside_the_folders_goes_to_view_which_answers_as_comfyui_does(
        tmp_path: Path, session: aiohttp.ClientSession, double: str) -> None:
    (tmp_path / "secret.png").write_bytes(b"not for callers")
    guarded = files(session, double, output=tmp_path / "output")
    with pytest.raises(ComfyHTTPError, match="400"):
        await guarded.read({"filename": "../secret.png", "subfolder": "", "type": "output"})


async def test_a_file_not_where_it_should_be_is_asked_of_view(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    misplaced = files(session, "http://127.0.0.1:9", output=tmp_path)
    with pytest.raises(ComfyUnreachable, match="GET /view"):
        await misplaced.read({"filename": "elsewhere.png", "subfolder": "", "type": "output"})


async def test_a_run_beside_its_comfyui_returns_the_file_in_comfyui_output_dir(tmp_path: Path, double: str) -> None:
    """What lies in COMFYUI_OUTPUT_DIR under the reported name is what the caller gets: the agent read it there."""
    planted = tmp_path / "told"
    planted.mkdir()
    (planted / "t1_beside_00001_.png").write_bytes(b"read from the folder, not from /view")
    prompt: dict[str, Any] = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 7}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "beside"}}}
    async with running_agent(comfyui_url=double, comfyui_output_dir=planted) as agent:
        reply = await agent.post("/api/run", json=prompt, headers={"task-id": "t1"})
        assert reply.status == 200, await reply.text()
        body = await reply.json()
    assert body["2"]["images"][0]["filename"] == "t1_beside_00001_.png"
    assert base64.b64decode(body["2"]["results"][0]) == b"read from the folder, not from /view"
    saved = tmp_path / "comfyui" / "output" / "t1_beside_00001_.png"  # where the double really wrote it
    async with running_agent(comfyui_url=double, comfyui_output_dir=saved.parent) as agent:
        body = await (await agent.post("/api/run", json=prompt, headers={"task-id": "t2"})).json()
    image = body["2"]["images"][0]
    assert base64.b64decode(body["2"]["results"][0]) == (saved.parent / image["filename"]).read_bytes()
