"""One output file read back from ComfyUI, with ComfyUI's failures in the agent's words: shared by the base64
results and by uploads that must convert (or cannot find the file on disk)."""

from __future__ import annotations

import asyncio
import time

from agent.comfy.client import ComfyHTTPError, ComfyUnreachable
from agent.comfy.outputs import ComfyFiles
from agent.comfy.prompt import Liveness
from agent.errors import AgentError, ComfyUICrashed, OutputUnavailable
from agent.tasks.model import ImageRef


async def _exits_soon(process: Liveness, within: float = 3.0) -> bool:
    """A refused connection is usually a ComfyUI that just died, before its exit is noticed: wait for it."""
    deadline = time.monotonic() + within
    while not process.exited and time.monotonic() < deadline:  # noqa: ASYNC110 - `exited` is a flag, not an event
        await asyncio.sleep(0.05)
    return process.exited


async def unavailable(image: ImageRef, exc: ComfyHTTPError | ComfyUnreachable,
                      process: Liveness | None) -> AgentError:
    if isinstance(exc, ComfyUnreachable) and process is not None and await _exits_soon(process):
        return ComfyUICrashed("ComfyUI exited before the run's outputs could be read")
    return OutputUnavailable(f"ComfyUI could not serve output {image.filename}: {exc}", image=image.model_dump())


async def read_output(files: ComfyFiles, image: ImageRef, process: Liveness | None) -> bytes:
    try:
        return await files.read(image.model_dump())
    except (ComfyHTTPError, ComfyUnreachable) as exc:
        raise await unavailable(image, exc, process) from exc
