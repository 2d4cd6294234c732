"""One run's output files on their way to the output store: a node's files start uploading as soon as it
reports them, while later nodes still run, a few at once; the run ends only once the last one is stored, and a
file that could not be stored fails the run (`OutputUploadFailed`), so nothing is half reported as success.

A file ComfyUI wrote beside the agent is streamed from disk by the store's client (never read whole into
memory) and removed once stored (`KEEP_LOCAL_OUTPUTS` keeps it); any other is read through ComfyUI's `/view`.
Keys are `PREFIX/TASK_ID/NODE_ID/FILENAME`.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from agent.comfy.client import ComfyHTTPError, ComfyUnreachable
from agent.comfy.outputs import OutputFiles
from agent.errors import OutputUnavailable, OutputUploadFailed
from agent.outputs.convert import convert
from agent.tasks.model import ImageRef

if TYPE_CHECKING:
    from agent.outputs.store import ObjectStore
    from agent.runs.run import RunOptions

UPLOADS_AT_ONCE = 4  # per run: enough to keep a link busy, few enough to leave ComfyUI's disk to ComfyUI


class Outputs:
    """Where runs deliver their files: the store, and whether ComfyUI's own copies stay."""

    def __init__(self, store: ObjectStore, keep_local: bool) -> None:
        self.store = store
        self.keep_local = keep_local

    def offer(self, headers: Mapping[str, str]) -> None:
        """A request's headers, which on FC carry the function role's current credentials."""
        self.store.credentials.offer(headers)

    def delivery(self, files: OutputFiles, task_id: str, options: RunOptions) -> Delivery:
        return Delivery(self.store, files, task_id, options, self.keep_local)


def _on_disk(path: str | None) -> tuple[Path | None, int]:
    """The file and its size where it is on this machine's disk, else (None, 0)."""
    try:
        return (Path(path), os.stat(path).st_size) if path is not None else (None, 0)
    except OSError:
        return None, 0


def _place(image: ImageRef) -> tuple[str, str, str]:
    return image.type, image.subfolder, image.filename


class Delivery:
    def __init__(self, store: ObjectStore, files: OutputFiles, task_id: str, options: RunOptions,
                 keep_local: bool) -> None:
        self.store = store
        self.files = files
        self.task_id = task_id
        self.options = options
        self.keep_local = keep_local
        self._gate = asyncio.Semaphore(UPLOADS_AT_ONCE)
        self._uploads: dict[tuple[str, str, str], asyncio.Future[ImageRef]] = {}

    def start(self, node: str, images: list[ImageRef]) -> None:
        """Upload what a node reported (a file reported twice, by a node and its display node, goes once)."""
        for image in images:
            if _place(image) not in self._uploads:
                self._uploads[_place(image)] = asyncio.ensure_future(self._upload(node, image))

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

    async def _upload(self, node: str, image: ImageRef) -> ImageRef:
        name = os.path.basename(image.filename)
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        async with self._gate:
            local, size = _on_disk(self.files.path_of(image.model_dump()))
            source: Path | bytes
            if self.options.format != "original" and content_type.startswith("image/"):
                data = await asyncio.to_thread(local.read_bytes) if local is not None else await self._read(image)
                converted = await asyncio.to_thread(convert, data, self.options.format, self.options.quality)
                if converted is not None:
                    name = f"{os.path.splitext(name)[0]}.{converted.extension}"
                    data, content_type = converted.data, converted.content_type
                source, size = data, len(data)
            elif local is not None:
                source = local
            else:
                source = await self._read(image)
                size = len(source)
            key = self.store.location.key(self.options.prefix, self.task_id, node, name)
            try:
                await self.store.put(key, source, content_type)
                url = await self.store.signed_url(key)
            except Exception as exc:  # the store's client raises its own kinds, and the credentials RuntimeError
                raise OutputUploadFailed(f"output {image.filename} could not be stored", key=key,
                                         store_message=str(exc)[:500]) from exc
        if local is not None and not self.keep_local:
            with contextlib.suppress(OSError):
                local.unlink()
        return image.model_copy(update={"url": url, "key": key, "content_type": content_type, "bytes": size})

    async def _read(self, image: ImageRef) -> bytes:
        try:
            return await self.files.read(image.model_dump())
        except (ComfyHTTPError, ComfyUnreachable) as exc:
            raise OutputUnavailable(f"ComfyUI could not serve output {image.filename}: {exc}",
                                    image=image.model_dump()) from exc
