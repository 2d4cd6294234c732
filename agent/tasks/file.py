"""Tasks as JSON files in one folder (a NAS mount on FC), safe for many instances at once.

Every write goes to a temporary file in the same folder and is renamed over the old one, so a reader sees the
old or the new file, never half of one. Ids are checked before they become file names, so nothing is ever
written outside the folder. File work runs in threads, one hop per operation: a slow NAS must not stall the
event loop, and each hop costs a fast local disk more than the write itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
import uuid
from pathlib import Path

from pydantic import ValidationError

from agent.logs import log_event
from agent.tasks.model import Results, Task, check_task_id
from agent.tasks.store import TaskStore, conflict

logger = logging.getLogger("agent.tasks")

TASK_SUFFIX = ".json"
RESULTS_SUFFIX = ".results.json"


def _write(path: str, data: bytes) -> None:
    directory, name = os.path.split(path)
    temp = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
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
    def __init__(self, directory: str | Path, ttl: int) -> None:
        super().__init__(ttl)
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def _path(self, task_id: str, suffix: str = TASK_SUFFIX) -> str:
        return os.path.join(self.directory, check_task_id(task_id) + suffix)

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
        if self.expired(task, time.time()):
            self._remove(task_id)
            return None
        return task

    def _remove(self, task_id: str) -> None:
        for suffix in (TASK_SUFFIX, RESULTS_SUFFIX):
            _unlink(self._path(task_id, suffix))

    def _claim(self, task: Task, data: bytes) -> None:
        existing = self._load(task.task_id)
        if existing is not None:
            if not existing.status.finished:
                raise conflict(existing)
            _unlink(self._path(task.task_id, RESULTS_SUFFIX))
        _write(self._path(task.task_id), data)

    def _store(self, task_id: str, data: bytes, results: bytes | None) -> None:
        if results is not None:
            _write(self._path(task_id, RESULTS_SUFFIX), results)
        _write(self._path(task_id), data)

    async def create(self, task: Task) -> None:
        await asyncio.to_thread(self._claim, task, task.model_dump_json().encode())

    async def save(self, task: Task, results: Results | None = None) -> None:
        data = task.model_dump_json().encode()  # serialised now: the task may change while the write waits
        encoded = None if results is None else json.dumps(results, separators=(",", ":")).encode()
        await asyncio.to_thread(self._store, task.task_id, data, encoded)

    async def get(self, task_id: str) -> Task | None:
        return await asyncio.to_thread(self._load, task_id)

    async def get_results(self, task_id: str) -> Results | None:
        raw = await asyncio.to_thread(_read, self._path(task_id, RESULTS_SUFFIX))
        return None if raw is None else json.loads(raw)
