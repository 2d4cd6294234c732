"""The file backend: tasks as JSON files in one folder (a NAS mount on FC, see folder.py), safe for many
instances at once.

A task is one file: its record on the first line and, once it succeeded, its results on the second (the
record's JSON holds no raw newline), so the end is one file written, not two: a file's creation is the slowest
thing a disk or a NAS does here, and a poll still reads the first line only. Beside it, by suffix, its event log
and its cancel request; shared documents have a suffix of their own. The four concerns share one `Folder`, and a
records claim unlinks the id's log and cancel request before it writes the record. A claim is a read then a
write, not one atomic step: two instances claiming the same new id in the same millisecond can both win (FC
never delivers one async task id twice at once; Redis is exact).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.logs import log_event
from agent.stores.bundle import Stores
from agent.stores.cancels import CancelMailbox
from agent.stores.claims import takes_over
from agent.stores.folder import (
    ORPHAN_TEMP_SECONDS,
    TEMP_SUFFIX,
    Folder,
    append,
    complete_lines_from,
    read,
    unlink,
    write,
)
from agent.stores.log import EventLog, LoggedEvent
from agent.stores.records import TaskRecords
from agent.stores.shared import SharedDocuments
from agent.tasks.model import TASK_ID_PATTERN, Results, Task

logger = logging.getLogger("agent.tasks")

TASK_SUFFIX = ".json"
CANCEL_SUFFIX = ".cancel"
EVENTS_SUFFIX = ".events"
SHARED_SUFFIX = ".shared"
EVENT_POLL_SECONDS = 0.2  # how often a stream looks at a log another instance appends to (a NAS has no inotify)


class FileRecords(TaskRecords):
    def __init__(self, folder: Folder, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self.folder = folder

    def _load(self, task_id: str) -> Task | None:
        """The stored task, or None when absent, unreadable or expired (an expired one is removed)."""
        raw = read(self.folder.path(task_id, TASK_SUFFIX), "record")
        if raw is None:
            return None
        try:
            task = self.parse(raw)
        except ValidationError as exc:
            log_event(logger, "store.unreadable", task_id, level=logging.ERROR, error=exc.errors()[0]["msg"])
            return None
        if self.expired(task):
            for suffix in (TASK_SUFFIX, CANCEL_SUFFIX, EVENTS_SUFFIX):
                unlink(self.folder.path(task_id, suffix))
            return None
        return task

    def _claim(self, task: Task, data: bytes, spare: str | None) -> Task | None:
        existing = self._load(task.task_id)
        replay = self.decide_claim(existing, task)
        if replay is None and not takes_over(existing, task):
            unlink(self.folder.path(task.task_id, CANCEL_SUFFIX))
            unlink(self.folder.path(task.task_id, EVENTS_SUFFIX))
        if replay is None:
            write(self.folder.path(task.task_id, TASK_SUFFIX), data, spare)  # a failed run's results go with it
        return replay

    async def claim(self, task: Task) -> Task | None:
        return await self.folder.fill(self._claim, task, task.model_dump_json().encode(),
                                      used=lambda replay: replay is None)

    async def save(self, task: Task, results: Results | None = None) -> None:
        data = task.model_dump_json().encode()  # serialised now: the task may change while the write waits
        if results is not None:  # written with the record in one step: whoever sees the end finds them
            data += b"\n" + json.dumps(results, separators=(",", ":")).encode()
        await self.folder.fill(write, self.folder.path(task.task_id, TASK_SUFFIX), data)

    async def load(self, task_id: str) -> Task | None:
        return await self.folder.io(self._load, task_id)

    async def get_results(self, task_id: str) -> Results | None:
        raw = await self.folder.io(read, self.folder.path(task_id, TASK_SUFFIX), "results")
        return None if raw is None else json.loads(raw)

    async def sweep(self) -> int:
        return await self.folder.io(self._sweep)

    def _sweep(self) -> int:
        removed = 0
        now = time.time()
        with os.scandir(self.folder.directory) as entries:
            for entry in entries:
                if entry.name.endswith(TEMP_SUFFIX) and now - entry.stat().st_mtime > ORPHAN_TEMP_SECONDS:
                    unlink(entry.path)
                elif entry.name.endswith(TASK_SUFFIX):
                    # another file in a shared folder is not a task: left alone, it must not stop the sweep
                    task_id = entry.name[: -len(TASK_SUFFIX)]
                    if TASK_ID_PATTERN.fullmatch(task_id) and self._load(task_id) is None:
                        removed += not os.path.exists(entry.path)  # an unreadable task is kept, not counted
        return removed


class FileCancels(CancelMailbox):
    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def request_cancel(self, task_id: str) -> None:
        await self.folder.fill(write, self.folder.path(task_id, CANCEL_SUFFIX), b"")

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        paths = {task_id: self.folder.path(task_id, CANCEL_SUFFIX) for task_id in task_ids}
        return await self.folder.io(lambda: {task_id for task_id, path in paths.items() if os.path.exists(path)})


class FileLog(EventLog):
    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """One line per entry; its id is its line number. The first append fills a spare (creating a file is the
        slow step); the rest append to it. Only the owner writes a task's log, one append at a time."""
        data = b"".join(json.dumps([kind, body], separators=(",", ":")).encode() + b"\n" for kind, body in events)
        await self.folder.fill(append, self.folder.path(task_id, EVENTS_SUFFIX), data, used=bool)

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        """Each look after the first reads only what was appended since the one before."""
        start = int(after) if after is not None and after.isdigit() else 0
        path = self.folder.path(task_id, EVENTS_SUFFIX)
        deadline = time.monotonic() + wait
        offset = seen = 0
        logged: list[LoggedEvent] = []
        while True:
            appended = await self.folder.io(complete_lines_from, path, offset)
            offset += len(appended)
            for line in appended.split(b"\n")[:-1]:
                seen += 1
                if seen > start:
                    kind, body = json.loads(line)
                    logged.append(LoggedEvent(str(seen), kind, body))
            if logged or time.monotonic() >= deadline:
                return logged
            await asyncio.sleep(min(EVENT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


class FileShared(SharedDocuments):
    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def put_shared(self, name: str, data: bytes) -> None:
        await self.folder.fill(write, self.folder.path(name, SHARED_SUFFIX), data)

    async def get_shared(self, name: str) -> bytes | None:
        return await self.folder.io(read, self.folder.path(name, SHARED_SUFFIX), "all")


def file_stores(directory: str | Path, ttl: float, stale_after: float, *, in_threads: bool | None = None) -> Stores:
    """The four concerns in one folder; `in_threads` decides where file work runs (None: by where it lives)."""
    folder = Folder(str(directory), in_threads)
    return Stores(FileRecords(folder, ttl, stale_after), FileLog(folder), FileCancels(folder), FileShared(folder),
                  folder.close)
