"""The models folder as runs use it: a model named by URL is found in its folder, or fetched once (one download
per model in this process, one across every instance sharing the folder: agent/models/lock.py), then named in
the graph ComfyUI gets.

Layout under the models folder (`MODELS_DIR`, by default `$NAS_DIR/models`):

    <kind>/<key>-<name>           the model, where ComfyUI lists it (`key`: its URL's hash, agent/models/refs.py)
    .downloads/<kind>/<key>.part  the download so far, never listed by ComfyUI; a later run resumes it
    .downloads/<kind>/<key>.lock  held by the instance downloading it
    .downloads/<kind>/<key>.json  where it came from, its size and sha256; touched at every use

A part becomes the model in one rename, once its size and checksum hold and its first bytes show a model
(safetensors, GGUF, a PyTorch checkpoint: a login page served with 200 never becomes a "model"). A download
goes on when the runs that asked for it are canceled: the next run needing it finds it done.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import errno
import hashlib
import json
import logging
import os
import shutil
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit, urlunsplit

from agent.config import ModelSettings
from agent.errors import AgentError, ModelFetchFailed, ModelStorageFull
from agent.logs import log_event
from agent.model_folders import MODEL_KINDS
from agent.models.cache import evict, uses
from agent.models.lock import HEARTBEAT, FolderLock
from agent.models.refs import ModelRef, failure, has_model_ending, model_refs, safe_name
from agent.models.sources import Failed, Opened, Refused
from agent.tasks.model import ModelFetch, ModelSource

if TYPE_CHECKING:
    from agent.buckets.clients import Buckets
    from agent.models.sources import ModelSources

logger = logging.getLogger("agent.models")

REPORT_EVERY = 0.5  # seconds between two progress reports of one download
WAIT_POLL = 0.5  # seconds between two looks at another instance's download
FLUSH_BYTES = 8 << 20  # written to the part file (and hashed) in a worker thread this many bytes at a time
_ENDINGS = {"safetensors": (".safetensors", ".sft"), "gguf": (".gguf",),
            "torch": (".ckpt", ".pt", ".pth", ".pt2", ".bin", ".pkl")}
Report = Callable[[int, int | None], None]  # bytes so far, and the total when known


class _Full(Exception):
    """No room in the models folder."""


def file_kind(head: bytes) -> str | None:
    """What a model file's first bytes show it is: `safetensors` (a little-endian header length, then JSON),
    `gguf`, `torch` (torch.save's zip, or a pickle), or None for anything else (a web page, text)."""
    if head.startswith(b"GGUF"):
        return "gguf"
    if head.startswith(b"PK\x03\x04") or (len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5):
        return "torch"
    if len(head) > 8 and 0 < struct.unpack("<Q", head[:8])[0] < 1 << 30 and head[8:9] == b"{":
        return "safetensors"
    return None


def final_name(ref: ModelRef, served: str | None, kind: str) -> str:
    """`<key>-<name>`: the URL's name (or the server's, for a link like Civitai's), with an ending ComfyUI
    loads this kind of file by."""
    endings = _ENDINGS[kind]
    candidates = [name for name in (ref.basename, safe_name(served or "")) if name]
    for name in candidates:
        if name.lower().endswith(endings):
            return f"{ref.key}-{name}"
    stem = next((name for name in reversed(candidates) if has_model_ending(name)), candidates[0])
    return f"{ref.key}-{stem.rsplit('.', 1)[0] if has_model_ending(stem) else stem}{endings[0]}"


def origin(url: str) -> str:
    """The URL without its query (a signed link's credentials) or fragment, for the record."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


@dataclass
class _Job:
    """One model being fetched in this process, shared by every run that names it."""

    ref: ModelRef
    task: asyncio.Task[tuple[str, ModelSource]] | None = None
    bytes: int = 0
    total: int | None = None
    listeners: list[Report] = field(default_factory=list)
    _reported_at: float = 0.0

    def advance(self, done: int, total: int | None, *, force: bool = False) -> None:
        self.bytes, self.total = done, total if total is not None else self.total
        now = time.monotonic()
        if force or now - self._reported_at >= REPORT_EVERY:
            self._reported_at = now
            for listener in self.listeners:
                listener(self.bytes, self.total)


class Models:
    def __init__(self, settings: ModelSettings, buckets: Buckets) -> None:
        self.settings = settings
        self.buckets = buckets
        self.folder = settings.folder
        self.kinds = tuple(sorted(set(MODEL_KINDS) | set(settings.loaders.values())))  # the folders it fills
        self._sources: ModelSources | None = None
        self._jobs: dict[tuple[str, str], _Job] = {}
        self._marks: dict[str, list[Path]] = {}  # each run's marks on the models it needs (agent/models/cache.py)
        self._names: dict[tuple[str, str], str] = {}  # (folder, key) -> the file's name, as last found

    @property
    def sources(self) -> ModelSources:
        """Made at the first model URL: most agents never fetch one."""
        if self._sources is None:
            from agent.inputs.guard import GuardedBackend
            from agent.models.sources import ModelSources

            rule = self.settings.addresses
            self._sources = ModelSources(GuardedBackend(rule.allow_private, rule.allow_hosts), self.settings.tokens,
                                         self.settings.stall_timeout, self.buckets)
        return self._sources

    async def close(self) -> None:
        for job in self._jobs.values():
            if job.task is not None:
                job.task.cancel()
        if self._sources is not None:
            await self._sources.close()

    def refs(self, prompt: dict[str, Any]) -> list[ModelRef]:
        return model_refs(prompt, self.settings.loaders)

    async def resolve(self, prompt: dict[str, Any], report: Callable[[list[ModelFetch]], None], holder: str
                      ) -> tuple[dict[str, Any], list[ModelFetch]]:
        """The prompt with each model URL replaced by its file's name, once every one is in its folder; `report`
        hears how the fetches go (every REPORT_EVERY seconds at most). The models stay out of the cache's
        eviction until `release(holder)`."""
        refs = self.refs(prompt)
        if not refs:
            return prompt, []
        if self.folder is None:
            raise refs[0].error("this agent has no models folder: set MODELS_DIR (or NAS_DIR)")
        self._marks[holder], found = await asyncio.to_thread(self._mark_and_find, refs, holder)
        fetches = [hit or ModelFetch(node_id=ref.node_id, input=ref.input_name, folder=ref.kind)
                   for ref, hit in zip(refs, found, strict=True)]

        def heard(index: int) -> Report:
            def update(done: int, total: int | None) -> None:
                fetches[index] = fetches[index].model_copy(update={"bytes": done, "total": total})
                report(list(fetches))
            return update

        missing = [index for index, hit in enumerate(found) if hit is None]
        ended = await asyncio.gather(*(self.fetch(refs[index], heard(index)) for index in missing),
                                     return_exceptions=True)
        errors = [outcome for outcome in ended if isinstance(outcome, BaseException)]
        if errors:
            raise errors[0]
        for index, outcome in zip(missing, ended, strict=True):
            assert isinstance(outcome, ModelFetch)
            fetches[index] = outcome
        graph = copy.deepcopy(prompt)
        for ref, fetch in zip(refs, fetches, strict=True):
            graph[ref.node_id]["inputs"][ref.input_name] = fetch.name
        return graph, fetches

    def _mark_and_find(self, refs: list[ModelRef], holder: str) -> tuple[list[Path], list[ModelFetch | None]]:
        """In one worker thread (a run naming models already in place pays one hop): each model marked as
        needed, then looked for."""
        assert self.folder is not None
        marks = _mark(self.folder, refs, holder)
        found: list[ModelFetch | None] = []
        for ref in refs:
            try:
                present = self._present(ref)
            except Refused:  # told again, naming the input, by its fetch
                present = None
            found.append(None if present is None else ModelFetch(
                node_id=ref.node_id, input=ref.input_name, folder=ref.kind, name=present[0], bytes=present[1],
                total=present[1], source=ModelSource.CACHED))
        return marks, found

    async def pull(self, ref: ModelRef, report: Report, holder: str) -> ModelFetch:
        """One model into its folder, asked for by itself (the models API), kept from eviction while it comes."""
        if self.folder is None:
            raise ref.error("this agent has no models folder: set MODELS_DIR (or NAS_DIR)")
        self._marks[holder] = await asyncio.to_thread(_mark, self.folder, [ref], holder)
        try:
            return await self.fetch(ref, report)
        finally:
            await self.release(holder)

    async def fetch(self, ref: ModelRef, report: Report) -> ModelFetch:
        began = time.monotonic()
        try:
            name, source = await self._obtain(ref, report)
        except Refused as exc:
            raise ref.error(str(exc)) from None
        except Failed as exc:
            raise failure(ModelFetchFailed, ref.node_id, ref.input_name, str(exc)) from None
        except _Full as exc:
            raise failure(ModelStorageFull, ref.node_id, ref.input_name, str(exc)) from None
        size = await asyncio.to_thread(self._model_path(ref, name).stat)
        return ModelFetch(node_id=ref.node_id, input=ref.input_name, folder=ref.kind, name=name,
                          bytes=size.st_size, total=size.st_size, seconds=round(time.monotonic() - began, 4),
                          source=source)

    async def _obtain(self, ref: ModelRef, report: Report) -> tuple[str, ModelSource]:
        """The model's name, from this process's job for it (whose first step looks in the folder)."""
        job = self._jobs.get((ref.kind, ref.key))
        if job is None or job.task is None or job.task.done():
            job = self._jobs[(ref.kind, ref.key)] = _Job(ref)
            job.task = asyncio.ensure_future(self._run_job(job))
            job.task.add_done_callback(lambda _: self._jobs.pop((ref.kind, ref.key), None))
            joined = False
        else:
            joined = True
        job.listeners.append(report)
        try:
            name, source = await asyncio.shield(job.task)
        finally:
            job.listeners.remove(report)
        return name, ModelSource.WAITED if joined else source

    async def release(self, holder: str) -> None:
        """The run ended: its models may be evicted again."""
        marks = self._marks.pop(holder, [])
        if marks:
            await asyncio.to_thread(_unmark, marks)

    def _model_path(self, ref: ModelRef, name: str) -> Path:
        assert self.folder is not None
        return self.folder / ref.kind / name

    def _work(self, ref: ModelRef, suffix: str) -> Path:
        assert self.folder is not None
        return self.folder / ".downloads" / ref.kind / f"{ref.key}{suffix}"

    def _present(self, ref: ModelRef) -> tuple[str, int] | None:
        """The model's file name and size when it is in its folder; a given sha256 checked against the one
        recorded at its download. A name found before costs one stat (on a NAS, one round trip)."""
        assert self.folder is not None
        name = self._names.get((ref.kind, ref.key))
        size = _size(self._model_path(ref, name)) if name else 0
        if not name or not size:
            name = self._find(ref)
            size = _size(self._model_path(ref, name)) if name else 0
        if not name:
            return None
        self._names[(ref.kind, ref.key)] = name
        if ref.sha256:
            recorded = _recorded(self._work(ref, ".json")).get("sha256")
            if recorded and recorded != ref.sha256:
                raise Refused(f"checksum mismatch: the model at this URL has sha256 {recorded}, not {ref.sha256}")
        return name, size

    def _find(self, ref: ModelRef) -> str | None:
        assert self.folder is not None
        folder = self.folder / ref.kind
        found = sorted(path.name for path in folder.glob(f"{ref.key}-*")
                       if has_model_ending(path.name) and path.is_file()) if folder.is_dir() else []
        return found[0] if found else None

    async def _run_job(self, job: _Job) -> tuple[str, ModelSource]:
        """Fetch under the folder's lock, or wait while another instance holds it."""
        ref = job.ref
        lock = FolderLock(self._work(ref, ".lock"))
        await asyncio.to_thread(self._work(ref, "").parent.mkdir, parents=True, exist_ok=True)
        waited = False
        while True:
            found = await asyncio.to_thread(self._present, ref)
            if found is not None:
                return found[0], ModelSource.WAITED if waited else ModelSource.CACHED
            if await asyncio.to_thread(lock.try_acquire):
                try:
                    return await self._download(job, lock), ModelSource.DOWNLOADED
                finally:
                    await asyncio.to_thread(lock.release)
            waited = True
            job.advance(await asyncio.to_thread(_size, self._work(ref, ".part")), None)
            await asyncio.sleep(WAIT_POLL)

    async def _download(self, job: _Job, lock: FolderLock) -> str:
        ref = job.ref
        found = await asyncio.to_thread(self._present, ref)  # finished by another while this one waited
        if found is not None:
            return found[0]
        part = self._work(ref, ".part")
        lost = asyncio.Event()
        beating = asyncio.ensure_future(_beat(lock, lost))
        began = time.monotonic()
        try:
            digest, kind, served = await self._into_part(job, part, lost)
        finally:
            beating.cancel()
        if ref.sha256 and digest != ref.sha256:
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise Refused(f"checksum mismatch: the file has sha256 {digest}, not {ref.sha256}")
        name = final_name(ref, served, kind)
        await asyncio.to_thread(self._place, ref, part, name, digest)
        await self._evict(ref, 0)
        log_event(logger, "model.downloaded", folder=ref.kind, name=name, bytes=job.bytes,
                  seconds=round(time.monotonic() - began, 3))
        return name

    async def _into_part(self, job: _Job, part: Path, lost: asyncio.Event) -> tuple[str, str, str | None]:
        """The part file completed from where it stands: its sha256, the kind its head shows, the name served."""
        ref = job.ref
        offset = await asyncio.to_thread(_size, part)
        async with self.sources.open(ref.url, offset) as opened:
            start = opened.start
            if opened.total is not None:
                await self._evict(ref, opened.total - start)
            self._check_room(opened.total, start, part)
            writer = _PartWriter(part, start)
            try:
                await asyncio.to_thread(writer.open)
                await self._stream(job, opened, writer, lost)
            except OSError as exc:
                await self._on_write_error(exc, part)
                raise
            finally:
                await asyncio.to_thread(writer.close)
        self._check_size(writer.size, part)
        job.advance(writer.size, opened.total, force=True)
        if opened.total is not None and writer.size != opened.total:
            raise Failed(f"the download broke off at {writer.size} of {opened.total} bytes (the next run resumes it)")
        kind = file_kind(await asyncio.to_thread(_head, part))
        if kind is None:
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise Refused("not a model file (safetensors, GGUF or a PyTorch checkpoint): "
                          "the URL served something else, a web page or a login form perhaps")
        return writer.digest(), kind, opened.filename

    async def _stream(self, job: _Job, opened: Opened, writer: _PartWriter, lost: asyncio.Event) -> None:
        """The body into the part, each buffer written and hashed in a worker thread while the next arrives
        (reading and hashing on two cores: a download as fast as curl's). What came is kept, broken off or
        not: the next run resumes from it."""
        writing: asyncio.Future[None] | None = None
        try:
            async for chunk in opened.chunks:
                if lost.is_set():
                    raise Failed("another instance took the download over")
                if writer.add(chunk) < FLUSH_BYTES:
                    continue
                if writing is not None:
                    await asyncio.shield(writing)
                self._check_size(writer.size + writer.buffered, writer.part)
                job.advance(writer.size, opened.total)
                writing = asyncio.ensure_future(asyncio.to_thread(writer.write, writer.take()))
        finally:
            if writing is not None:
                await asyncio.shield(writing)
            if not lost.is_set():
                await asyncio.to_thread(writer.write, writer.take())

    async def _evict(self, ref: ModelRef, incoming: int) -> None:
        """Keep the downloads within the budget, with room for `incoming` more bytes on the disk."""
        assert self.folder is not None
        removed = await asyncio.to_thread(evict, self.folder, self.settings.cache_bytes, (ref.kind, ref.key),
                                          incoming)
        for name in removed:
            log_event(logger, "model.evicted", model=name)

    def _check_room(self, total: int | None, start: int, part: Path) -> None:
        if total is None:
            return
        if total > self.settings.max_bytes:
            part.unlink(missing_ok=True)
            raise Refused(f"larger than the {self.settings.max_bytes}-byte limit ({total} bytes, MODEL_MAX_BYTES)")
        free = shutil.disk_usage(part.parent).free
        if total - start > free:
            part.unlink(missing_ok=True)
            raise _Full(f"the models folder has {free} bytes free; the model needs {total - start} more")

    def _check_size(self, size: int, part: Path) -> None:
        if size > self.settings.max_bytes:
            part.unlink(missing_ok=True)
            raise Refused(f"larger than the {self.settings.max_bytes}-byte limit (MODEL_MAX_BYTES)")

    @staticmethod
    async def _on_write_error(exc: OSError, part: Path) -> None:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            await asyncio.to_thread(part.unlink, missing_ok=True)
            raise _Full("the models folder is full (no space left on the device)") from None
        raise AgentError(f"the models folder refused the download: {exc}"[:300]) from None

    def _place(self, ref: ModelRef, part: Path, name: str, digest: str) -> None:
        target = self._model_path(ref, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        size = part.stat().st_size
        record = {"url": origin(ref.url), "name": name, "bytes": size, "sha256": digest,
                  "downloaded_at": time.time()}
        self._work(ref, ".json").write_text(json.dumps(record))
        _used_now(self._work(ref, ".json"))
        os.replace(part, target)


class _PartWriter:
    """Appends to the part file and hashes what it holds, a buffer at a time (in a worker thread)."""

    def __init__(self, part: Path, start: int) -> None:
        self.part = part
        self.start = start
        self.size = start
        self._buffer: list[bytes] = []
        self.buffered = 0
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()

    def open(self) -> None:
        """Hash what a resumed part holds; a fresh start truncates it."""
        if self.start:
            with self.part.open("rb") as held:
                while block := held.read(FLUSH_BYTES):
                    self._hash.update(block)
        self._file = self.part.open("ab" if self.start else "wb")

    def add(self, chunk: bytes) -> int:
        self._buffer.append(chunk)
        self.buffered += len(chunk)
        return self.buffered

    def take(self) -> list[bytes]:
        """What is buffered, handed to `write` (on the event loop, so the next bytes go to a new buffer)."""
        taken, self._buffer, self.buffered = self._buffer, [], 0
        return taken

    def write(self, chunks: list[bytes]) -> None:
        """In a worker thread, one at a time: the file's write and sha256 both let go of the GIL."""
        assert self._file is not None
        data = b"".join(chunks)
        self._file.write(data)
        self._hash.update(data)
        self._file.flush()
        self.size += len(data)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def digest(self) -> str:
        return self._hash.hexdigest()


async def _beat(lock: FolderLock, lost: asyncio.Event) -> None:
    while True:
        await asyncio.sleep(HEARTBEAT)
        if not await asyncio.to_thread(lock.beat):
            lost.set()
            return


def _mark(folder: Path, refs: list[ModelRef], holder: str) -> list[Path]:
    marks = []
    for ref in refs:
        mark = uses(folder, ref.kind, ref.key) / holder
        try:
            mark.touch()
        except FileNotFoundError:  # the model's first use: its folder of marks is made once
            mark.parent.mkdir(parents=True, exist_ok=True)
            mark.touch()
        marks.append(mark)
    return marks


def _unmark(marks: list[Path]) -> None:
    """The run ended: its marks go, and each model's record is touched, its last use (for the cache)."""
    for mark in marks:
        with contextlib.suppress(OSError):  # a folder that refuses now: the mark lapses after IN_USE_FOR
            mark.unlink(missing_ok=True)
            _used_now(mark.parent.with_suffix(".json"))


def _used_now(record: Path) -> None:
    """The record's mtime set to this instant (the cache's last use): a bare touch takes the kernel's coarse
    clock, a few milliseconds a tick, and two uses in one tick would tie."""
    now = time.time_ns()
    os.utime(record, ns=(now, now))


def _recorded(record: Path) -> dict[str, Any]:
    try:
        found = json.loads(record.read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(16)

