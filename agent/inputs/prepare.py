"""Turn the data a prompt's loader inputs carry into ComfyUI uploads, and the inputs into their names.

All inputs of one prompt are resolved at once (bounded); the same URL or the same data is fetched and
uploaded once. Files are named by the hash of their content, so the same bytes always get the same name and
different bytes never overwrite each other. Any failure stops the run before anything is queued.
"""

from __future__ import annotations

import asyncio
import copy
import functools
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent.assets.blobs import Blobs
from agent.buckets.clients import Buckets
from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.config import InputSettings
from agent.errors import ComfyUIUnavailable
from agent.inputs.objects import read_object
from agent.inputs.slots import File, Loaders, Slot
from agent.inputs.sources import FetchError, Inline, Stored
from agent.tasks.model import when_long

if TYPE_CHECKING:
    from agent.inputs.fetch import UrlFetcher

FETCHES_AT_ONCE = 8
T = TypeVar("T")


@dataclass(frozen=True)
class Prepared:
    """The graph as ComfyUI gets it, and how many bytes came from URLs and buckets for it."""

    graph: dict[str, Any]
    fetched_bytes: int = 0


class InputPreparer:
    def __init__(self, inputs: InputSettings, client: ComfyClient, buckets: Buckets,
                 blobs: Blobs | None = None) -> None:
        self.client = client
        self.buckets = buckets
        self.blobs = blobs
        self.max_bytes = inputs.max_bytes
        self.inputs = inputs
        self.loaders = Loaders(inputs)
        self._fetcher: UrlFetcher | None = None

    @property
    def fetcher(self) -> UrlFetcher:
        """Made at the first URL input: httpx and its pools cost megabytes an agent without URL inputs never needs."""
        if self._fetcher is None:
            from agent.inputs.fetch import UrlFetcher
            from agent.inputs.guard import GuardedBackend

            inputs = self.inputs
            self._fetcher = UrlFetcher(GuardedBackend(inputs.addresses.allow_private, inputs.addresses.allow_hosts),
                                       inputs.max_bytes, inputs.fetch_timeout)
        return self._fetcher

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()

    async def prepare(self, prompt: dict[str, Any]) -> Prepared:
        """The prompt with every data-carrying input replaced by its uploaded name (the input is not changed).

        Every input is read and checked before the first upload, so a bad one leaves ComfyUI untouched. Reading,
        decoding and hashing tens of megabytes is done in worker threads, so the event loop (other requests,
        `/healthz`) never waits for it.
        """
        slots = await when_long(self.loaders.slots, prompt)
        if not slots:
            return Prepared(prompt)
        gate = asyncio.Semaphore(FETCHES_AT_ONCE)
        downloads: dict[str, asyncio.Future[bytes]] = {}
        files = await _all_or_first_error([self._file(slot, gate, downloads) for slot in slots])
        uploads: dict[str, asyncio.Future[str]] = {}
        names = await _all_or_first_error([_once(uploads, file.name, functools.partial(self._upload, file))
                                           for file in files])
        rewritten = copy.deepcopy(prompt)
        for slot, name in zip(slots, names, strict=True):
            rewritten[slot.node_id]["inputs"][slot.input_name] = name
        fetched = sum(len(download.result()) for download in downloads.values())
        return Prepared(rewritten, fetched)

    async def _file(self, slot: Slot, gate: asyncio.Semaphore, downloads: dict[str, asyncio.Future[bytes]]) -> File:
        if isinstance(slot.source, Inline):
            return await asyncio.to_thread(self.loaders.inline_file, slot, slot.source)
        if isinstance(slot.source, Stored):
            return await asyncio.to_thread(self.loaders.file, slot, await self._stored(slot, slot.source.digest))
        url, in_bucket = slot.source.url, slot.source.in_bucket

        async def download() -> bytes:
            async with gate:
                if in_bucket:
                    return await read_object(self.buckets, url, self.max_bytes, self.inputs.fetch_timeout)
                return await self.fetcher.fetch(url)

        try:
            data = await _once(downloads, url, download)
        except FetchError as exc:
            raise slot.error(str(exc)) from None
        return await asyncio.to_thread(self.loaders.file, slot, data)

    async def _stored(self, slot: Slot, digest: str) -> bytes:
        try:
            data = await self.blobs.read(digest, self.max_bytes) if self.blobs is not None else None
        except ValueError as exc:
            raise slot.error(str(exc)) from None
        if data is None:
            raise slot.error(f"no asset has the hash {digest}")
        return data

    async def _upload(self, file: File) -> str:
        try:
            return await self.client.upload(file.data, file.name, file.mime)
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            raise ComfyUIUnavailable(f"ComfyUI did not take the upload of {file.name}: {exc}") from exc


async def _once(started: dict[str, asyncio.Future[T]], key: str, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` for the first caller with this key; later callers share its result (or its error)."""
    if key not in started:
        started[key] = asyncio.ensure_future(work())
    return await asyncio.shield(started[key])


async def _all_or_first_error(coros: list[Coroutine[Any, Any, T]]) -> list[T]:
    """All results in order; the first error cancels the rest and is raised as it is."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coro) for coro in coros]
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [task.result() for task in tasks]
