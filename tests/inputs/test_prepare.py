"""InputPreparer on the seed's example shape: four LoadImage URLs feeding a graph of custom nodes."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.buckets.clients import Buckets
from agent.config import Settings
from agent.errors import InputImageError
from agent.inputs.prepare import InputPreparer
from agent_harness import serving
from files_server import FilesServer, png


class UploadRecorder:
    def __init__(self) -> None:
        self.uploads: list[tuple[str, bytes, str]] = []

    async def upload(self, data: bytes, filename: str, content_type: str) -> str:
        self.uploads.append((filename, data, content_type))
        return filename


def seed_example(url: str) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": f"{url}/png/200/150/120"}, "_meta": {"title": "person"}},
        "2": {"class_type": "LoadImage", "inputs": {"image": f"{url}/png/20/40/160"}, "_meta": {"title": "garment"}},
        "3": {"class_type": "LoadImage", "inputs": {"image": f"{url}/png/255/0/0"}, "_meta": {"title": "mask"}},
        "4": {"class_type": "LoadImage", "inputs": {"image": f"{url}/png/200/150/120"}, "_meta": {"title": "ref"}},
        "5": {"class_type": "MaskFromRGBCMYBW+", "inputs": {"image": ["3", 0], "threshold_r": 0.15,
                                                           "threshold_g": 0.15, "threshold_b": 0.15}},
        "6": {"class_type": "ImageCompositeMasked", "inputs": {"destination": ["1", 0], "source": ["2", 0],
                                                               "x": 0, "y": 0, "resize_source": True,
                                                               "mask": ["5", 0]}},
        "7": {"class_type": "ImageBlend", "inputs": {"image1": ["6", 0], "image2": ["4", 0], "blend_factor": 0.5,
                                                     "blend_mode": "normal"}},
        "8": {"class_type": "SaveImage", "inputs": {"images": ["7", 0], "filename_prefix": "tryon"}},
    }


@pytest.fixture
async def files() -> AsyncIterator[tuple[FilesServer, str]]:
    server = FilesServer()
    async with serving(server.app()) as url:
        yield server, url


def preparer(client: UploadRecorder) -> InputPreparer:
    settings = Settings(comfyui_url="http://127.0.0.1:9", url_allow_hosts=frozenset({"127.0.0.1"}))
    return InputPreparer(settings.inputs, client, Buckets.from_settings(settings.buckets, {}))  # type: ignore[arg-type]


async def test_seed_example_inputs_become_uploads_and_nothing_else_changes(files: tuple[FilesServer, str]) -> None:
    server, url = files
    client = UploadRecorder()
    inputs = preparer(client)
    prompt = seed_example(url)
    original = copy.deepcopy(prompt)
    try:
        prepared = await inputs.prepare(prompt)
        rewritten = prepared.graph
    finally:
        await inputs.close()
    assert prompt == original
    expected = {node: f"agent-{hashlib.sha256(png(color)).hexdigest()[:32]}.png" for node, color in
                (("1", (200, 150, 120)), ("2", (20, 40, 160)), ("3", (255, 0, 0)), ("4", (200, 150, 120)))}
    assert {node: rewritten[node]["inputs"]["image"] for node in expected} == expected
    for node in ("5", "6", "7", "8"):
        assert rewritten[node] == original[node]
    assert rewritten["1"]["_meta"] == original["1"]["_meta"]
    assert sorted(server.hits.values()) == [1, 1, 1]
    assert prepared.fetched_bytes == sum(len(png(color)) for color in ((200, 150, 120), (20, 40, 160), (255, 0, 0)))
    assert sorted(name for name, _, _ in client.uploads) == sorted(set(expected.values()))
    assert all(mime == "image/png" for _, _, mime in client.uploads)


async def test_one_bad_input_uploads_nothing(files: tuple[FilesServer, str]) -> None:
    _, url = files
    client = UploadRecorder()
    inputs = preparer(client)
    prompt = seed_example(url)
    prompt["3"]["inputs"]["image"] = f"{url}/missing"
    try:
        with pytest.raises(InputImageError) as error:
            await inputs.prepare(prompt)
    finally:
        await inputs.close()
    assert error.value.extra["node_id"] == "3"
    assert client.uploads == []


async def test_prompt_without_data_is_returned_as_is() -> None:
    client = UploadRecorder()
    inputs = preparer(client)
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}}}
    try:
        assert (await inputs.prepare(prompt)).graph is prompt
    finally:
        await inputs.close()
