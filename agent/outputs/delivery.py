"""One run's output files on their way to the output store: a node's files (images, videos, audio, whatever
list it reports them in) start uploading as soon as it reports them, while later nodes still run, a few at
once; the run ends only once the last one is stored, and a file that could not be stored fails the run
(`OutputUploadFailed`), so nothing is half reported as success.

A file ComfyUI wrote beside the agent is streamed from disk by the store's client and removed once stored
(`KEEP_LOCAL_OUTPUTS` keeps it); any other is streamed from ComfyUI's `/view`. Neither is held whole in memory,
except an image being converted. Keys are `PREFIX/TASK_ID/NODE_ID/FILENAME`.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.comfy.client import ComfyHTTPError, ComfyUnreachable
from agent.comfy.outputs import ComfyFiles
from agent.errors import OutputUploadFailed
from agent.outputs.convert import convert
from agent.outputs.reading import read_output, unavailable
from agent.tasks.model import ImageRef
from agent.tasks.progress import place_of

if TYPE_CHECKING:
    from agent.buckets.bucket import Bucket
    from agent.buckets.location import Location
    from agent.tasks.options import RunOptions

UPLOADS_AT_ONCE = 4  # per run: enough to keep a link busy, few enough to leave ComfyUI's disk to ComfyUI
CONTENT_TYPES = {".flac": "audio/flac", ".opus": "audio/opus", ".webm": "video/webm", ".mkv": "video/x-matroska",
                 ".glb": "model/gltf-binary", ".gltf": "model/gltf+json"}  # Python's table lacks these


def content_type_of(name: str) -> str:
    extension = os.path.splitext(name)[1].lower()
    return CONTENT_TYPES.get(extension) or mimetypes.guess_type(name)[0] or "application/octet-stream"


@dataclass(frozen=True)
class OutputStore:
    """Where runs deliver their files: the bucket and key prefix, and whether ComfyUI's own copies stay."""

    bucket: Bucket
    location: Location
    keep_local: bool

    def delivery(self, files: ComfyFiles, task_id: str, options: RunOptions) -> Delivery:
        return Delivery(self, files, task_id, options)


def _on_disk(path: str | None) -> tuple[Path | None, int]:
    """The file and its size where it is on this machine's disk, else (None, 0)."""
    try:
        return (Path(path), os.stat(path).st_size) if path is not None else (None, 0)
    except OSError:
        return None, 0


class _Download:
    """A `/view` download handed to the store piece by piece, counted on the way."""

    def __init__(self, first: bytes, rest: AsyncGenerator[bytes, None]) -> None:
        self.size = 0
        self._first = first
        self.rest = rest

    async def chunks(self) -> AsyncIterator[bytes]:
        self.size = len(self._first)
        yield self._first
        async for chunk in self.rest:
            self.size += len(chunk)
            yield chunk


class Delivery:
    def __init__(self, outputs: OutputStore, files: ComfyFiles, task_id: str, options: RunOptions) -> None:
        self.outputs = outputs
        self.files = files
        self.task_id = task_id
        self.options = options
        self._gate = asyncio.Semaphore(UPLOADS_AT_ONCE)
        self._uploads: dict[tuple[str, str, str], asyncio.Future[ImageRef]] = {}

    def start(self, node: str, files: list[ImageRef]) -> None:
        """Upload what a node reported (a file reported twice, by a node and its display node, goes once)."""
        for file in files:
            if place_of(file) not in self._uploads:
                self._uploads[place_of(file)] = asyncio.ensure_future(self._upload(node, file))

    async def finished(self) -> dict[tuple[str, str, str], ImageRef]:
        """Every file as stored, by its place in ComfyUI; the first failure if any failed."""
        try:
            stored = await asyncio.gather(*self._uploads.values())
        except BaseException:
            self.cancel()
            raise
        return dict(zip(self._uploads, stored, strict=True))

    def cancel(self) -> None:
        for upload in self._uploads.values():
            upload.cancel()
        for upload in self._uploads.values():  # their outcome is the run's failure, already told
            upload.add_done_callback(lambda done: done.cancelled() or done.exception())

    async def _upload(self, node: str, file: ImageRef) -> ImageRef:
        name = os.path.basename(file.filename)
        content_type = content_type_of(name)
        async with self._gate:
            local, size = _on_disk(self.files.path_of(file.model_dump()))
            if self.options.format != "original" and content_type.startswith("image/"):
                data = await asyncio.to_thread(local.read_bytes) if local is not None else \
                    await read_output(self.files, file, None)
                converted = await asyncio.to_thread(convert, data, self.options.format, self.options.quality)
                if converted is not None:
                    name = f"{os.path.splitext(name)[0]}.{converted.extension}"
                    data, content_type = converted.data, converted.content_type
                key, size = self._key(node, name), len(data)
                await self._put(file, key, data, content_type, size)
            elif local is not None:
                key = self._key(node, name)
                await self._put(file, key, local, content_type, size)
            else:
                key, download = self._key(node, name), await self._download(file)
                try:
                    await self._put(file, key, download.chunks(), content_type, None)
                finally:
                    await download.rest.aclose()
                size = download.size
            url = await self._sign(file, key)
        if local is not None and not self.outputs.keep_local:
            with contextlib.suppress(OSError):
                local.unlink()
        return file.model_copy(update={"url": url, "key": key, "content_type": content_type, "bytes": size})

    async def _download(self, file: ImageRef) -> _Download:
        """The file from `/view`, its first piece already there: ComfyUI's refusal is told as its own."""
        chunks = self.files.client.view_chunks(file.model_dump())
        try:
            first = await anext(chunks, b"")
        except (ComfyHTTPError, ComfyUnreachable) as exc:
            raise await unavailable(file, exc, None) from exc
        return _Download(first, chunks)

    def _key(self, node: str, name: str) -> str:
        return self.outputs.location.key(self.options.prefix, self.task_id, node, name)

    async def _put(self, file: ImageRef, key: str, source: Path | bytes | AsyncIterator[bytes], content_type: str,
                   size: int | None) -> None:
        try:
            await self.outputs.bucket.put(key, source, content_type, size)
        except Exception as exc:  # the store's client raises its own kinds, and the credentials RuntimeError
            raise _failed(file, key, exc) from exc

    async def _sign(self, file: ImageRef, key: str) -> str:
        try:
            return await self.outputs.bucket.signed_url(key)
        except Exception as exc:  # as in _put
            raise _failed(file, key, exc) from exc


def _failed(file: ImageRef, key: str, exc: Exception) -> OutputUploadFailed:
    return OutputUploadFailed(f"output {file.filename} could not be stored", key=key, store_message=str(exc)[:500])
