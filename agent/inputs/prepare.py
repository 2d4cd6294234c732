"""Turn the data a prompt's loader inputs carry into ComfyUI uploads, and the inputs into their names.

All inputs of one prompt are resolved at once (bounded); the same URL or the same data is fetched and
uploaded once. Files are named by the hash of their content, so the same bytes always get the same name and
different bytes never overwrite each other. Any failure stops the run before anything is queued.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from agent.buckets.clients import Buckets
from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.config import Settings
from agent.errors import ComfyUIUnavailable, InputImageError
from agent.inputs.objects import read_object
from agent.inputs.sniff import Kind, sniff
from agent.inputs.sources import FetchError, Inline, Source, SourceError, source_of

if TYPE_CHECKING:
    from agent.inputs.fetch import UrlFetcher

FETCHES_AT_ONCE = 8
_WITH_ARTICLE = {"image": "an image", "video": "a video", "audio": "an audio"}
T = TypeVar("T")


@dataclass(frozen=True)
class Slot:
    """One loader input that carries data: where it is, and what kind of file it must hold."""

    node_id: str
    input_name: str
    kinds: tuple[Kind, ...]
    source: Source

    def error(self, reason: str) -> InputImageError:
        return InputImageError(f"node {self.node_id}, input {self.input_name!r}: {reason}",
                               node_id=self.node_id, input=self.input_name, reason=reason)


@dataclass(frozen=True)
class File:
    """Checked bytes, named by their content."""

    data: bytes
    name: str
    mime: str


@dataclass(frozen=True)
class Prepared:
    """The graph as ComfyUI gets it, and how many bytes came from URLs and buckets for it."""

    graph: dict[str, Any]
    fetched_bytes: int = 0


class InputPreparer:
    def __init__(self, settings: Settings, client: ComfyClient, buckets: Buckets) -> None:
        self.client = client
        self.buckets = buckets
        self.max_bytes = settings.input_max_bytes
        self.settings = settings
        self._fetcher: UrlFetcher | None = None
        self._loaders: dict[str, tuple[str, tuple[Kind, ...], bool]] = {}
        for node_class, input_name in settings.media_loaders:
            self._loaders[node_class] = (input_name, ("video", "audio", "image"), False)
        for node_class, input_name in settings.image_loaders:
            self._loaders[node_class] = (input_name, ("image",), True)

    @property
    def fetcher(self) -> UrlFetcher:
        """Made at the first URL input: httpx and its pools cost megabytes an agent without URL inputs never needs."""
        if self._fetcher is None:
            from agent.inputs.fetch import UrlFetcher
            from agent.inputs.guard import GuardedBackend

            settings = self.settings
            self._fetcher = UrlFetcher(GuardedBackend(settings.url_allow_private, settings.url_allow_hosts),
                                       settings.input_max_bytes, settings.input_fetch_timeout)
        return self._fetcher

    async def close(self) -> None:
        if self._fetcher is not None:
            await self._fetcher.close()

    def slots(self, prompt: dict[str, Any]) -> list[Slot]:
        """The loader inputs that carry data; raises for data that cannot be read at all."""
        found = []
        for node_id, node in prompt.items():
            loader = self._loaders.get(str(node.get("class_type")))
            if loader is None:
                continue
            input_name, kinds, bare_base64 = loader
            value = (node.get("inputs") or {}).get(input_name)
            try:
                source = source_of(value, bare_base64)
            except SourceError as exc:
                raise Slot(node_id, input_name, kinds, Inline(b"")).error(str(exc)) from None
            if source is not None:
                found.append(Slot(node_id, input_name, kinds, source))
        return found

    async def prepare(self, prompt: dict[str, Any]) -> Prepared:
        """The prompt with every data-carrying input replaced by its uploaded name (the input is not changed).

        Every input is read and checked before the first upload, so a bad one leaves ComfyUI untouched.
        """
        slots = self.slots(prompt)
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
        data = await self._bytes(slot, gate, downloads)
        file_type = sniff(data)
        if file_type is None or file_type.kind not in slot.kinds:
            found = f" (it is {file_type.mime})" if file_type else ""
            raise slot.error(f"not {' or '.join(_WITH_ARTICLE[kind] for kind in slot.kinds)} file{found}")
        return File(data, f"agent-{hashlib.sha256(data).hexdigest()[:32]}.{file_type.extension}", file_type.mime)

    async def _bytes(self, slot: Slot, gate: asyncio.Semaphore, downloads: dict[str, asyncio.Future[bytes]]) -> bytes:
        if isinstance(slot.source, Inline):
            data = slot.source.data
        else:
            url = slot.source.url

            async def download() -> bytes:
                async with gate:
                    if url.split("://", 1)[0].lower() in ("oss", "s3"):
                        return await read_object(self.buckets, url, self.max_bytes, self.settings.input_fetch_timeout)
                    return await self.fetcher.fetch(url)

            try:
                data = await _once(downloads, url, download)
            except FetchError as exc:
                raise slot.error(str(exc)) from None
        if len(data) > self.max_bytes:
            raise slot.error(f"larger than the {self.max_bytes}-byte limit")
        if not data:
            raise slot.error("empty file")
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
