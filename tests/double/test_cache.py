"""ComfyUI's classic cache: what a prompt reuses from the previous one."""

from __future__ import annotations

import re
from io import BytesIO
from typing import Any, cast

from PIL import Image

from comfy_double.harness import DoubleClient, WsClient


def empty_to(output: str, color: int, ids: tuple[str, str] = ("1", "2"), prefix: str = "cache") -> dict[str, Any]:
    """EmptyImage -> an output node (SaveImage, PreviewImage or SaveImageWebsocket)."""
    source, sink = ids
    inputs: dict[str, Any] = {"images": [source, 0]} | ({"filename_prefix": prefix} if output == "SaveImage" else {})
    empty = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": color}}
    return {source: empty, sink: {"class_type": output, "inputs": inputs}}


async def cached_nodes(double: DoubleClient, client: WsClient, prompt: dict[str, Any]) -> list[str]:
    """Run a prompt; the nodes its ``execution_cached`` listed."""
    _, reply = await double.post_prompt({"prompt": prompt, "client_id": client.client_id})
    await client.wait_done(reply["prompt_id"])
    starts = [f for f in client.frames if f.type == "execution_cached"]
    return cast("list[str]", starts[-1].data["data"]["nodes"])


async def test_only_the_previous_prompt_is_reused(double: DoubleClient) -> None:
    client = await double.ws("cache")
    first, other = empty_to("SaveImage", 1), empty_to("SaveImage", 2, prefix="other")
    assert await cached_nodes(double, client, first) == []
    assert await cached_nodes(double, client, first) == ["1", "2"]
    assert await cached_nodes(double, client, other) == []
    assert await cached_nodes(double, client, first) == []


async def test_an_unchanged_node_is_reused_under_another_id(double: DoubleClient) -> None:
    client = await double.ws("renamed")
    await cached_nodes(double, client, empty_to("SaveImage", 5))
    assert await cached_nodes(double, client, empty_to("SaveImage", 5, ids=("7", "8"), prefix="b")) == ["7"]


def png(color: tuple[int, int, int]) -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (8, 8), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_a_changed_input_file_runs_load_image_again(double: DoubleClient) -> None:
    client = await double.ws("files")
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": "source.png"}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    await double.upload("source.png", png((255, 0, 0)))
    assert await cached_nodes(double, client, prompt) == []
    assert await cached_nodes(double, client, prompt) == ["1", "2"]
    await double.upload("source.png", png((0, 0, 255)), overwrite="true")
    assert await cached_nodes(double, client, prompt) == []


async def test_save_image_websocket_is_never_cached(double: DoubleClient) -> None:
    client = await double.ws("ws-save")
    prompt = empty_to("SaveImageWebsocket", 3)
    await cached_nodes(double, client, prompt)
    assert await cached_nodes(double, client, prompt) == ["1"]


async def test_preview_image_keeps_its_prefix_while_the_node_stays(double: DoubleClient) -> None:
    client = await double.ws("previews")
    for color in (1, 2):
        await cached_nodes(double, client, empty_to("PreviewImage", color))
    await cached_nodes(double, client, empty_to("SaveImage", 3))  # node 2 is another class now
    await cached_nodes(double, client, empty_to("PreviewImage", 4))
    names = [m["data"]["output"]["images"][0]["filename"] for m in client.messages("executed")]
    prefixes = [re.sub(r"_\d{5}_\.png$", "", name) for name in names]
    assert prefixes[0] == prefixes[1] != prefixes[3]
    assert names[1].endswith("_00002_.png")
