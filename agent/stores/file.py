"""Tasks as JSON files in one folder (a NAS mount on FC), safe for many instances at once.

Every write goes to a temporary file in the same folder and is renamed over the old one, so a reader sees the
old or the new file, never half of one. Ids are checked before they become file names, so nothing is ever
written outside the folder. A task is one file: its record on the first line and, once it succeeded, its
results on the second (the record's JSON holds no raw newline), so the end is one file written, not two: a
file's creation is the slowest thing a disk or a NAS does here, and a poll still reads the first line only. On
a network file system (the NAS on FC) file work runs in threads, one hop per
operation, because a slow or stuck NAS must not stall the event loop; on a local disk it runs inline, where
an operation takes a fraction of a millisecond and a thread hop under load costs several. A claim is a read
then a write, not one atomic step: two instances claiming the same new id in the same millisecond can both
win (FC never delivers one async task id twice at once; Redis is exact).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import ValidationError

from agent.errors import StoreUnavailable
from agent.filesystems import on_local_disk
from agent.logs import log_event
from agent.stores.base import LoggedEvent, TaskStore
from agent.stores.claims import takes_over
from agent.tasks.model import TASK_ID_PATTERN, Results, Task, check_task_id

logger = logging.getLogger("agent.tasks")

TASK_SUFFIX = ".json"
CANCEL_SUFFIX = ".cancel"
EVENTS_SUFFIX = ".events"
SHARED_SUFFIX = ".shared"
EVENT_POLL_SECONDS = 0.2  # how often a stream looks at a log another instance appends to (a NAS has no inotify)
TEMP_SUFFIX = ".tmp"
ORPHAN_TEMP_SECONDS = 3600  # a temporary file this old belongs to a writer that died mid-write
T = TypeVar("T")
_TEMP_PREFIX = uuid.uuid4().hex[:12]  # this process's temporary names: unique across instances on one NAS
_temp_serial = itertools.count()
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
            _unlink(path)


def _quiet(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def _write(path: str, data: bytes, spare: str | None = None) -> None:
    """`data` into a spare (or a new temporary file), then renamed over `path`. Plain `os` calls: a buffered
    file object costs several system calls more per write, and writes are what the store does most."""
    if spare is not None:
        try:
            return _fill_and_rename(spare, os.O_WRONLY | os.O_TRUNC, path, data)
        except FileNotFoundError:
            pass  # swept as an orphan while it waited: make one
    _fill_and_rename(_temp_name(os.path.dirname(path)), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, path, data)


def _fill_and_rename(temp: str, flags: int, path: str, data: bytes) -> None:
    try:
        handle = os.open(temp, flags, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(handle, data[written:] if written else data)
        finally:
            os.close(handle)
        os.replace(temp, path)
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


def _read(path: str, part: Literal["record", "results", "all"]) -> bytes | None:
    """Of a file: its `record` (the first line), its `results` (the rest, None when empty) or `all` of it; None
    when there is no such file."""
    try:
        with open(path, "rb") as handle:
            if part == "all":
                return handle.read()
            record = handle.readline()
            return record if part == "record" else handle.read() or None
    except FileNotFoundError:
        return None


def _append(path: str, data: bytes, spare: str | None) -> bool:
    """`data` at the end of `path`; a missing file is made from `spare` (True: the spare was used)."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
    except FileNotFoundError:
        _write(path, data, spare)
        return spare is not None
    try:
        os.write(descriptor, data)
    finally:
        os.close(descriptor)
    return False


def _complete_lines_from(path: str, offset: int) -> bytes:
    """The log's complete lines after byte `offset` (a line still being appended is left for the next look)."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            content = handle.read()
    except FileNotFoundError:
        return b""
    return content[: content.rfind(b"\n") + 1]


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class FileStore(TaskStore):
    def __init__(self, directory: str | Path, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self.directory = str(directory)
        self.in_threads: bool | None = None  # decided at the first use: where the folder lives
        self._made = False
        self._spares = _Spares(self.directory)

    def _path(self, task_id: str, suffix: str = TASK_SUFFIX) -> str:
        return os.path.join(self.directory, check_task_id(task_id) + suffix)

    async def _io(self, work: Callable[..., T], *args: object, creates: bool = False) -> T:
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

    def _load(self, task_id: str) -> Task | None:
        """The stored task, or None when absent, unreadable or expired (an expired one is removed)."""
        raw = _read(self._path(task_id), "record")
        if raw is None:
            return None
        try:
            task = self.parse(raw)
        except ValidationError as exc:
            log_event(logger, "store.unreadable", task_id, level=logging.ERROR, error=exc.errors()[0]["msg"])
            return None
        if self.expired(task):
            self._remove(task_id)
            return None
        return task

    def _remove(self, task_id: str) -> None:
        for suffix in (TASK_SUFFIX, CANCEL_SUFFIX, EVENTS_SUFFIX):
            _unlink(self._path(task_id, suffix))

    def _claim(self, task: Task, data: bytes, spare: str | None) -> Task | None:
        existing = self._load(task.task_id)
        replay = self.decide_claim(existing, task)
        if replay is None and not takes_over(existing, task):
            _unlink(self._path(task.task_id, CANCEL_SUFFIX))
            _unlink(self._path(task.task_id, EVENTS_SUFFIX))
        if replay is None:
            _write(self._path(task.task_id), data, spare)  # a failed run's results go with its old file
        return replay

    async def claim(self, task: Task) -> Task | None:
        spare = self._spares.pop()
        try:
            replay = await self._io(self._claim, task, task.model_dump_json().encode(), spare, creates=spare is None)
        finally:
            self._spares.top_up()
        if replay is not None and spare is not None:
            self._spares.put_back(spare)
        return replay

    async def _replace(self, path: str, data: bytes) -> None:
        spare = self._spares.pop()
        try:
            await self._io(_write, path, data, spare, creates=spare is None)
        finally:
            self._spares.top_up()

    async def save(self, task: Task, results: Results | None = None) -> None:
        data = task.model_dump_json().encode()  # serialised now: the task may change while the write waits
        if results is not None:  # written with the record in one step: whoever sees the end finds them
            data += b"\n" + json.dumps(results, separators=(",", ":")).encode()
        await self._replace(self._path(task.task_id), data)

    async def load(self, task_id: str) -> Task | None:
        return await self._io(self._load, task_id)

    async def get_results(self, task_id: str) -> Results | None:
        raw = await self._io(_read, self._path(task_id), "results")
        return None if raw is None else json.loads(raw)

    async def request_cancel(self, task_id: str) -> None:
        await self._replace(self._path(task_id, CANCEL_SUFFIX), b"")

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        paths = {task_id: self._path(task_id, CANCEL_SUFFIX) for task_id in task_ids}
        return await self._io(lambda: {task_id for task_id, path in paths.items() if os.path.exists(path)})

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """One line per entry; its id is its line number. The first append fills a spare (creating a file is the
        slow step); the rest append to it. Only the owner writes a task's log, one append at a time."""
        data = b"".join(json.dumps([kind, body], separators=(",", ":")).encode() + b"\n" for kind, body in events)
        spare = self._spares.pop()
        try:
            used = await self._io(_append, self._path(task_id, EVENTS_SUFFIX), data, spare, creates=spare is None)
        finally:
            self._spares.top_up()
        if spare is not None and not used:
            self._spares.put_back(spare)

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        """Each look after the first reads only what was appended since the one before."""
        start = int(after) if after is not None and after.isdigit() else 0
        path = self._path(task_id, EVENTS_SUFFIX)
        deadline = time.monotonic() + wait
        offset = seen = 0
        logged: list[LoggedEvent] = []
        while True:
            appended = await self._io(_complete_lines_from, path, offset)
            offset += len(appended)
            for line in appended.split(b"\n")[:-1]:
                seen += 1
                if seen > start:
                    kind, body = json.loads(line)
                    logged.append(LoggedEvent(str(seen), kind, body))
            if logged or time.monotonic() >= deadline:
                return logged
            await asyncio.sleep(min(EVENT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))

    async def put_shared(self, name: str, data: bytes) -> None:
        await self._replace(self._path(name, SHARED_SUFFIX), data)

    async def get_shared(self, name: str) -> bytes | None:
        return await self._io(_read, self._path(name, SHARED_SUFFIX), "all")

    async def sweep(self) -> int:
        return await self._io(self._sweep)

    async def close(self) -> None:
        await self._spares.close()

    def _sweep(self) -> int:
        removed = 0
        now = time.time()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.endswith(TEMP_SUFFIX) and now - entry.stat().st_mtime > ORPHAN_TEMP_SECONDS:
                    _unlink(entry.path)
                elif entry.name.endswith(TASK_SUFFIX):
                    # another file in a shared folder is not a task: left alone, it must not stop the sweep
                    task_id = entry.name[: -len(TASK_SUFFIX)]
                    if TASK_ID_PATTERN.fullmatch(task_id) and self._load(task_id) is None:
                        removed += not os.path.exists(entry.path)  # an unreadable task is kept, not counted
        return removed
