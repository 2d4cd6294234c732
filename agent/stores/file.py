"""Tasks as JSON files in one folder (a NAS mount on FC), safe for many instances at once.

Every write goes to a temporary file in the same folder and is renamed over the old one, so a reader sees the
old or the new file, never half of one. Ids are checked before they become file names, so nothing is ever
written outside the folder. On a network file system (the NAS on FC) file work runs in threads, one hop per
operation, because a slow or stuck NAS must not stall the event loop; on a local disk it runs inline, where
an operation takes a fraction of a millisecond and a thread hop under load costs several. A claim is a read
then a write, not one atomic step: two instances claiming the same new id in the same millisecond can both
win (FC never delivers one async task id twice at once; Redis is exact).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from agent.errors import StoreUnavailable
from agent.logs import log_event
from agent.stores.base import TaskStore
from agent.tasks.model import TASK_ID_PATTERN, Results, Task, check_task_id

logger = logging.getLogger("agent.tasks")

TASK_SUFFIX = ".json"
RESULTS_SUFFIX = ".results.json"
CANCEL_SUFFIX = ".cancel"
TEMP_SUFFIX = ".tmp"
ORPHAN_TEMP_SECONDS = 3600  # a temporary file this old belongs to a writer that died mid-write
T = TypeVar("T")
LOCAL_FILE_SYSTEMS = frozenset({"ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "tmpfs", "ramfs", "overlay",
                                "vfat", "exfat"})


def on_local_disk(directory: str, mounts: str = "/proc/mounts") -> bool:
    """Whether the folder's file system is a local one; anything unknown (NFS, SMB, FUSE, no /proc) is not."""
    try:
        lines = Path(mounts).read_text().splitlines()
    except OSError:
        return False
    path = os.path.realpath(directory)
    deepest, fs_type = "", ""
    for fields in map(str.split, lines):
        if len(fields) < 3:
            continue
        point, kind = fields[1], fields[2]
        # the deepest mount point holding the folder; of two on one point, the later one covers the earlier
        if (path == point or path.startswith(point.rstrip("/") + "/")) and len(point) >= len(deepest):
            deepest, fs_type = point, kind
    return fs_type in LOCAL_FILE_SYSTEMS


_TEMP_PREFIX = uuid.uuid4().hex[:12]  # this process's temporary names: unique across instances on one NAS
_temp_serial = itertools.count()


def _write(path: str, data: bytes) -> None:
    """A temporary file, then renamed over `path`. Plain `os` calls: a buffered file object costs several system
    calls more per write, and writes are what the store does most."""
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{_TEMP_PREFIX}-{next(_temp_serial)}{TEMP_SUFFIX}")
    try:
        handle = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            written = 0
            while written < len(data):
                written += os.write(handle, data[written:] if written else data)
        finally:
            os.close(handle)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


class FileStore(TaskStore):
    def __init__(self, directory: str | Path, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self.directory = str(directory)
        self.in_threads: bool | None = None  # decided at the first use: where the folder lives
        self._made = False

    def _path(self, task_id: str, suffix: str = TASK_SUFFIX) -> str:
        return os.path.join(self.directory, check_task_id(task_id) + suffix)

    async def _io(self, work: Callable[..., T], *args: object) -> T:
        """File work, off the event loop on a network file system; a full, read-only or missing folder is
        StoreUnavailable."""
        try:
            if not self._made:
                os.makedirs(self.directory, exist_ok=True)
                self._made = True
            if self.in_threads is None:
                self.in_threads = not on_local_disk(self.directory)
            return await asyncio.to_thread(work, *args) if self.in_threads else work(*args)
        except OSError as exc:
            raise StoreUnavailable(f"the task folder cannot be used: {exc.strerror or exc}") from exc

    def _load(self, task_id: str) -> Task | None:
        """The stored task, or None when absent, unreadable or expired (an expired one is removed)."""
        raw = _read(self._path(task_id))
        if raw is None:
            return None
        try:
            task = Task.model_validate_json(raw)
        except ValidationError as exc:
            log_event(logger, "store.unreadable", task_id, level=logging.ERROR, error=exc.errors()[0]["msg"])
            return None
        if self.expired(task):
            self._remove(task_id)
            return None
        return task

    def _remove(self, task_id: str) -> None:
        for suffix in (TASK_SUFFIX, RESULTS_SUFFIX, CANCEL_SUFFIX):
            _unlink(self._path(task_id, suffix))

    def _claim(self, task: Task, data: bytes) -> Task | None:
        existing = self._load(task.task_id)
        replay = self.decide_claim(existing, task)
        if replay is None:
            if existing is not None:
                _unlink(self._path(task.task_id, RESULTS_SUFFIX))
            _unlink(self._path(task.task_id, CANCEL_SUFFIX))
            _write(self._path(task.task_id), data)
        return replay

    def _store(self, task_id: str, data: bytes, results: bytes | None) -> None:
        if results is not None:
            _write(self._path(task_id, RESULTS_SUFFIX), results)
        _write(self._path(task_id), data)

    async def claim(self, task: Task) -> Task | None:
        return await self._io(self._claim, task, task.model_dump_json().encode())

    async def save(self, task: Task, results: Results | None = None) -> None:
        data = task.model_dump_json().encode()  # serialised now: the task may change while the write waits
        encoded = None if results is None else json.dumps(results, separators=(",", ":")).encode()
        await self._io(self._store, task.task_id, data, encoded)

    async def load(self, task_id: str) -> Task | None:
        return await self._io(self._load, task_id)

    async def get_results(self, task_id: str) -> Results | None:
        raw = await self._io(_read, self._path(task_id, RESULTS_SUFFIX))
        return None if raw is None else json.loads(raw)

    async def request_cancel(self, task_id: str) -> None:
        await self._io(_write, self._path(task_id, CANCEL_SUFFIX), b"")

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        paths = {task_id: self._path(task_id, CANCEL_SUFFIX) for task_id in task_ids}
        return await self._io(lambda: {task_id for task_id, path in paths.items() if os.path.exists(path)})

    async def sweep(self) -> int:
        return await self._io(self._sweep)

    def _sweep(self) -> int:
        removed = 0
        now = time.time()
        with os.scandir(self.directory) as entries:
            for entry in entries:
                if entry.name.endswith(TEMP_SUFFIX) and now - entry.stat().st_mtime > ORPHAN_TEMP_SECONDS:
                    _unlink(entry.path)
                elif entry.name.endswith(TASK_SUFFIX) and not entry.name.endswith(RESULTS_SUFFIX):
                    # another file in a shared folder is not a task: left alone, it must not stop the sweep
                    task_id = entry.name[: -len(TASK_SUFFIX)]
                    if TASK_ID_PATTERN.fullmatch(task_id) and self._load(task_id) is None:
                        removed += not os.path.exists(entry.path)  # an unreadable task is kept, not counted
        return removed
