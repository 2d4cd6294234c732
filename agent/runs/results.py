"""A succeeded run's images, read back from ComfyUI's folders (or `/view`) as padded base64, in the map's order."""

from __future__ import annotations

import asyncio
import base64
import time

from agent.comfy.client import ComfyHTTPError, ComfyUnreachable
from agent.comfy.outputs import OutputFiles
from agent.comfy.prompt import Liveness
from agent.errors import ComfyUICrashed, OutputUnavailable
from agent.outputs.convert import convert
from agent.tasks.model import ImageRef, Progress, Results

RESULT_FETCHES = 8  # images fetched from ComfyUI at once for one run


async def _exits_soon(process: Liveness, within: float = 3.0) -> bool:
    """A refused connection is usually a ComfyUI that just died, before its exit is noticed: wait for it."""
    deadline = time.monotonic() + within
    while not process.exited and time.monotonic() < deadline:  # noqa: ASYNC110 - `exited` is a flag, not an event
        await asyncio.sleep(0.05)
    return process.exited


async def read_results(files: OutputFiles, progress: Progress, process: Liveness, image_format: str = "original",
                       quality: int | None = None) -> Results:
    gate = asyncio.Semaphore(RESULT_FETCHES)

    async def fetch(image: ImageRef) -> str:
        async with gate:
            try:
                data = await files.read(image.model_dump())
            except (ComfyHTTPError, ComfyUnreachable) as exc:
                if isinstance(exc, ComfyUnreachable) and await _exits_soon(process):
                    raise ComfyUICrashed("ComfyUI exited before the run's outputs could be read") from exc
                raise OutputUnavailable(f"ComfyUI could not serve output {image.filename}: {exc}",
                                        image=image.model_dump()) from exc
        if image_format != "original":
            converted = await asyncio.to_thread(convert, data, image_format, quality)
            data = data if converted is None else converted.data
        return base64.b64encode(data).decode("ascii")

    nodes = [(node, state.images) for node, state in progress.items() if state.images]
    encoded = await asyncio.gather(*(asyncio.gather(*(fetch(image) for image in images)) for _, images in nodes))
    return {node: list(values) for (node, _), values in zip(nodes, encoded, strict=True)}
