"""A folder (a NAS mount on FC) that the file backend's concerns share, and the file work they do in it.

Every write goes to a temporary file in the same folder and is renamed over the old one, so a reader sees the
old or the new file, never half of one. Ids are checked before they become file names, so nothing is ever
written outside the folder. On a network file system (the NAS on FC) file work runs in threads, one hop per
operation, because a slow or stuck NAS must not stall the event loop; on a local disk it runs inline, where
an operation takes a fraction of a millisecond and a thread hop under load costs several. Creating a file is the
slowest thing a disk or a NAS does here, so empty files are made ahead for writes to fill.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import uuid
from collections.abc import Callable
from typing import Literal, TypeVar

from agent.errors import StoreUnavailable
from agent.filesystems import on_local_disk
from agent.tasks.model import check_task_id

TEMP_SUFFIX = ".tmp"
ORPHAN_TEMP_SECONDS = 3600  # a temporary file this old belongs to a writer that died mid-write
T = TypeVar("T")
_TEMP_PREFIX = uuid.uuid4().hex[:12]  # this process's temporary names: unique across instances on one NAS
_temp_serial = itertools.count()
READ_CHUNK = 1 << 16  # bytes per read: a record, or what a log gained, in one
SPARE_FILES = 32  # empty files kept ready per store: more than one run's writes, fewer than a burst's


SPARE_PREFIX = ".spare-"


def _temp_name(directory: str, prefix: str = ".") -> str:
    return os.path.join(directory, f"{prefix}{_TEMP_PREFIX}-{next(_temp_serial)}{TEMP_SUFFIX}")


class _Spares:
    """Empty files made ahead, in a thread, for writes to fill and rename over their target: creating a file is
    the slowest step of a write (measured on this project's CI disk: 380 µs to create one, 8 µs to open one
    that exists; on a NAS a create is a round trip or more), and it is then off the run's path."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self._ready: collections.deque[str] = collections.deque()
        self._filling: asyncio.Future[None] | None = None

    def pop(self) -> str | None:
        """A spare's path (callable from any thread), or None when none is left."""
        try:
            return self._ready.popleft()
        except IndexError:
            return None

    def put_back(self, path: str) -> None:
        self._ready.appendleft(path)

    def top_up(self) -> None:
        """Make more in the background when half are used (on the event loop, after a write)."""
        if len(self._ready) <= SPARE_FILES // 2 and (self._filling is None or self._filling.done()):
            self._filling = asyncio.ensure_future(asyncio.to_thread(self._make, SPARE_FILES - len(self._ready)))
            self._filling.add_done_callback(_quiet)  # a folder that refuses: writes then create their own

    def _make(self, count: int) -> None:
        for _ in range(count):
            path = _temp_name(self.directory, SPARE_PREFIX)  # named apart: an empty file waiting, not a failed write
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
            self._ready.append(path)

    async def close(self) -> None:
        if self._filling is not None:
            await asyncio.wait([self._filling])
        while (path := self.pop()) is not None:
            unlink(path)


def _quiet(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def write(path: str, data: bytes, spare: str | None = None) -> None:
    """`data` into a spare (or a new temporary file), then renamed over `path`. Plain `os` calls: a buffered
    file object costs several system calls more per write, and writes are what the store does most."""
    temp = _filled(os.path.dirname(path), data, spare)
    try:
        os.replace(temp, path)
    except BaseException:
        _discard(temp)
        raise


def _filled(directory: str, data: bytes, spare: str | None) -> str:
    """The path of a file aside holding `data`: the spare, or a new one when there is none (or it was swept as
    an orphan while it waited)."""
    if spare is not None:
        try:
            _fill(spare, os.O_WRONLY | os.O_TRUNC, data)
            return spare
        except FileNotFoundError:
            pass
    temp = _temp_name(directory)
    _fill(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, data)
    return temp


def _fill(temp: str, flags: int, data: bytes) -> None:
    try:
        handle = os.open(temp, flags, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(handle, data[written:] if written else data)
        finally:
            os.close(handle)
    except BaseException:
        _discard(temp)
        raise


def _discard(temp: str) -> None:
    """A failed write's file goes; where the folder refuses even that (made read-only), it is left empty."""
    try:
        os.unlink(temp)
    except FileNotFoundError:
        pass
    except OSError:
        with contextlib.suppress(OSError):
            os.truncate(temp, 0)


def read(path: str, part: Literal["record", "results", "all"]) -> bytes | None:
    """Of a file: its `record` (the first line), its `results` (the rest, None when empty) or `all` of it; None
    when there is no such file. A record is read without the results after it, which may be large."""
    content = _read_from(path, 0, until=b"\n" if part == "record" else None)
    if content is None or part == "all":
        return content
    record, newline, rest = content.partition(b"\n")
    return record + newline if part == "record" else rest or None


def _read_from(path: str, offset: int, until: bytes | None = None) -> bytes | None:
    """The file's bytes from `offset` to its end, or up to and with the first `until`; None when there is no
    file. Plain `os` calls (an open, a read or two, a close), as the writes: a buffered file object costs four
    system calls more, and the store reads on every poll."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        chunks: list[bytes] = []
        while chunk := os.pread(descriptor, READ_CHUNK, offset):
            chunks.append(chunk)
            offset += len(chunk)
            if len(chunk) < READ_CHUNK or (until is not None and until in chunk):
                break  # a short read of a file is its end
    finally:
        os.close(descriptor)
    return b"".join(chunks)


def append(path: str, data: bytes, spare: str | None) -> bool:
    """`data` at the end of `path`; a missing file is made from `spare` (True: the spare was used)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        write(path, data, spare)
        return spare is not None
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
    return False


def create(path: str, data: bytes, spare: str | None = None) -> bool:
    """`data` at `path` unless a file is there already (False): written aside (into `spare` when given: it is
    used either way), then hard-linked, which is atomic and fails on an existing name, on a NAS too, so a reader
    never finds the file half written."""
    temp = _filled(os.path.dirname(path), data, spare)
    try:
        os.link(temp, path)
    except FileExistsError:
        return False
    finally:
        unlink(temp)
    return True


def complete_lines_from(path: str, offset: int) -> bytes:
    """The log's complete lines after byte `offset` (a line still being appended is left for the next look)."""
    content = _read_from(path, offset) or b""
    return content[: content.rfind(b"\n") + 1]


def unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _always(_: object) -> bool:
    return True


class Folder:
    def __init__(self, directory: str, in_threads: bool | None = None) -> None:
        self.directory = directory
        self.in_threads = in_threads  # None: decided at the first use, by where the folder lives
        self._made = False
        self._spares = _Spares(directory)

    def path(self, name: str, suffix: str) -> str:
        return os.path.join(self.directory, check_task_id(name) + suffix)

    async def io(self, work: Callable[..., T], *args: object, creates: bool = False) -> T:
        """File work, off the event loop on a network file system or when it `creates` a file (no spare was
        left: a burst must not wait behind creations on the loop); a full, read-only or missing folder is
        StoreUnavailable."""
        try:
            if not self._made:
                os.makedirs(self.directory, exist_ok=True)
                self._made = True
            if self.in_threads is None:
                self.in_threads = not on_local_disk(self.directory)
            return await asyncio.to_thread(work, *args) if self.in_threads or creates else work(*args)
        except OSError as exc:
            raise StoreUnavailable(f"the task folder cannot be used: {exc.strerror or exc}") from exc

    async def fill(self, work: Callable[..., T], *args: object, used: Callable[[T], bool] = _always) -> T:
        """`work(*args, spare)`, given a spare file to fill and rename (None when none is left); one the work
        did not use, as `used` tells from its answer, waits for the next write."""
        spare = self._spares.pop()
        try:
            done = await self.io(work, *args, spare, creates=spare is None)
        finally:
            self._spares.top_up()
        if spare is not None and not used(done):
            self._spares.put_back(spare)
        return done

    async def close(self) -> None:
        await self._spares.close()
