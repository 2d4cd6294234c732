"""Prompts for the double, and a look at what it received: shared by the agent's tests."""

from __future__ import annotations

import base64
import io
from collections.abc import Callable
from typing import Any

import aiohttp
from PIL import Image

from waiting import EVENTUALLY, until


def rgb(color: int) -> tuple[int, int, int]:
    return (color >> 16) & 255, (color >> 8) & 255, color & 255


def png_of(color: int, size: int = 8) -> bytes:
    """A small PNG of one color: an input image whose first pixel a run's output is checked by."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), rgb(color)).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel(body: dict[str, Any], node: str, index: int = 0) -> tuple[int, int, int]:
    """The first pixel of a node's image in a run's reply (its base64 `results`)."""
    data = base64.b64decode(body[node]["results"][index], validate=True)
    value = Image.open(io.BytesIO(data)).convert("RGB").getpixel((0, 0))
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def save_prompt(color: int, prefix: str = "t", delay: float | None = None, fault: str | None = None,
                width: int = 16, height: int = 16) -> dict[str, Any]:
    """EmptyImage → SaveImage; `delay`/`fault` script the double's EmptyImage node."""
    source: dict[str, Any] = {"class_type": "EmptyImage", "inputs": {
        "width": width, "height": height, "batch_size": 1, "color": color}}
    script = {key: value for key, value in (("delay", delay), ("fault", fault)) if value is not None}
    if script:
        source["_meta"] = {"double": script}
    return {"1": source,
            "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}}}


def with_preview(prompt: dict[str, Any]) -> dict[str, Any]:
    return {**prompt, "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}}


async def double_info(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/__double__/info") as response:
        info: dict[str, Any] = await response.json()
        return info


async def wait_double(url: str, condition: Callable[[dict[str, Any]], object], what: str,
                      timeout: float = EVENTUALLY) -> dict[str, Any]:
    """The double's first `/__double__/info` for which `condition` holds (a prompt running, N queued, ...)."""

    async def seen() -> dict[str, Any] | None:
        info = await double_info(url)
        return info if condition(info) else None

    return await until(seen, timeout, f"the double: {what}")
