"""A succeeded run's images, read back from ComfyUI's folders (or `/view`) as padded base64, in the map's order."""

from __future__ import annotations

import asyncio
import base64

from agent.comfy.outputs import ComfyFiles
from agent.comfy.prompt import Liveness
from agent.outputs.convert import convert
from agent.outputs.reading import read_output
from agent.tasks.model import ImageRef, Progress, Results

RESULT_FETCHES = 8  # images fetched from ComfyUI at once for one run


async def read_results(files: ComfyFiles, progress: Progress, process: Liveness, image_format: str = "original",
                       quality: int | None = None) -> Results:
    gate = asyncio.Semaphore(RESULT_FETCHES)

    async def fetch(image: ImageRef) -> str:
        async with gate:
            data = await read_output(files, image, process)
        if image_format != "original":
            converted = await asyncio.to_thread(convert, data, image_format, quality)
            data = data if converted is None else converted.data
        return base64.b64encode(data).decode("ascii")

    nodes = [(node, state.images) for node, state in progress.items() if state.images]
    encoded = await asyncio.gather(*(asyncio.gather(*(fetch(image) for image in images)) for _, images in nodes))
    return {node: list(values) for (node, _), values in zip(nodes, encoded, strict=True)}
