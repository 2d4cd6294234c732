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

import contextlib
import json
import logging
import os
import time
import uuid
from collections.abc import Collection, Iterator
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
    create,
    read,
    unlink,
    write,
)
from agent.stores.idempotency import KEY_LIFE, IdempotencyKeys, key_name
from agent.stores.jobs import JobEntry, JobIndex
from agent.stores.keys import ApiKeys, KeyRecord
from agent.stores.log import EventLog, LoggedEvent, Wakeups
from agent.stores.meters import Meters, refill
from agent.stores.records import TaskRecords
from agent.stores.shared import SharedDocuments
from agent.stores.usage import UsageEntry, UsageLedger
from agent.stores.workflows import PublishedWorkflows
from agent.tasks.model import TASK_ID_PATTERN, Results, Task, check_task_id

logger = logging.getLogger("agent.tasks")

TASK_SUFFIX = ".json"
CANCEL_SUFFIX = ".cancel"
EVENTS_SUFFIX = ".events"
SHARED_SUFFIX = ".shared"
JOB_SUFFIX = ".job"
KEY_SUFFIX = ".key"
WORKFLOW_SUFFIX = ".workflow"
RETIRED_SUFFIX = ".retired"
API_KEY_SUFFIX, DIGEST_SUFFIX = ".apikey", ".digest"
BUCKET_SUFFIX, LEASES_SUFFIX, LOCK_SUFFIX = ".bucket", ".leases", ".lock"
USAGE_SUFFIX = ".usage"
RECENT_DAYS = 3  # days whose recorded task ids an instance remembers
LOCK_STALE_SECONDS = 10.0  # a meter's lock is held for one read and one write: older, its holder died
LOCK_WAIT_SECONDS = 0.002
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
        self._appended = Wakeups()  # a stream here learns of this process's appends at once, of others' by looking

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        """One line per entry; its id is its line number. The first append fills a spare (creating a file is the
        slow step); the rest append to it. Only the owner writes a task's log, one append at a time."""
        data = b"".join(json.dumps([kind, body], separators=(",", ":")).encode() + b"\n" for kind, body in events)
        await self.folder.fill(append, self.folder.path(task_id, EVENTS_SUFFIX), data, used=bool)
        self._appended.wake(task_id)

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
            await self._appended.wait(task_id, min(EVENT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


class FileShared(SharedDocuments):
    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def put_shared(self, name: str, data: bytes) -> None:
        await self.folder.fill(write, self.folder.path(name, SHARED_SUFFIX), data)

    async def get_shared(self, name: str) -> bytes | None:
        return await self.folder.io(read, self.folder.path(name, SHARED_SUFFIX), "all")

    async def delete_shared(self, name: str) -> bool:
        return await self.folder.io(_removed, self.folder.path(name, SHARED_SUFFIX))


def _removed(path: str) -> bool:
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


class FileJobs(JobIndex):
    """An entry per job, named by its id: a page is the folder's job names, sorted."""

    def __init__(self, folder: Folder, ttl: float) -> None:
        super().__init__(ttl)
        self.folder = folder

    async def add(self, entry: JobEntry) -> None:
        await self.folder.fill(write, self.folder.path(entry.job_id, JOB_SUFFIX), entry.model_dump_json().encode())

    async def entry(self, job_id: str) -> JobEntry | None:
        if not self.alive(job_id):
            return None
        raw = await self.folder.io(read, self.folder.path(job_id, JOB_SUFFIX), "all")
        return None if raw is None else JobEntry.model_validate_json(raw)

    async def remove(self, job_id: str) -> None:
        await self.folder.io(unlink, self.folder.path(job_id, JOB_SUFFIX))

    async def page(self, before: str | None, limit: int) -> list[str]:
        return await self.folder.io(self._page, before, limit)

    def _page(self, before: str | None, limit: int) -> list[str]:
        now = time.time()
        with os.scandir(self.folder.directory) as entries:
            names = [entry.name[: -len(JOB_SUFFIX)] for entry in entries if entry.name.endswith(JOB_SUFFIX)]
        live = [job_id for job_id in names if self.alive(job_id, now)]
        for job_id in set(names) - set(live):
            if TASK_ID_PATTERN.fullmatch(job_id):  # another file in a shared folder is left alone
                unlink(self.folder.path(job_id, JOB_SUFFIX))
        return sorted((job_id for job_id in live if before is None or job_id < before), reverse=True)[:limit]


class FileIdempotency(IdempotencyKeys):
    """A key is a file made with O_EXCL: of two instances taking one key, the file system lets one make it."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def take(self, key: str, job_id: str) -> str | None:
        return await self.folder.fill(self._take, self.folder.path(key_name(key), KEY_SUFFIX), job_id)

    @staticmethod
    def _take(path: str, job_id: str, spare: str | None) -> str | None:
        """Every submit of comfy-sdk has a key: the first try writes a spare, off the path of a new file."""
        while not create(path, job_id.encode(), spare):
            spare = None
            holder = read(path, "all")
            if holder is not None and time.time() - _modified(path) < KEY_LIFE:
                return holder.decode()
            unlink(path)  # expired (two takers of one expired key in the same instant may both win)
        return None

    async def give_back(self, key: str, job_id: str) -> None:
        path = self.folder.path(key_name(key), KEY_SUFFIX)
        await self.folder.io(lambda: unlink(path) if read(path, "all") == job_id.encode() else None)


class FileWorkflows(PublishedWorkflows):
    """In a folder of their own (`published/`, not among the tasks): `NAME.VERSION.workflow`, made with O_EXCL so
    of two publishers at once one takes the next number and the other the one after; `NAME.VERSION.retired`
    beside it once retired."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    def _path(self, name: str, version: int, suffix: str) -> str:
        return os.path.join(self.folder.directory, f"{check_task_id(name)}.{version}{suffix}")

    async def publish(self, name: str, document: bytes) -> int:
        return await self.folder.io(self._publish, name, document, creates=True)

    def _publish(self, name: str, document: bytes) -> int:
        number = max(self._versions(name), default=0) + 1
        while not create(self._path(name, number, WORKFLOW_SUFFIX), document):
            number += 1
        return number

    async def versions(self, name: str) -> dict[int, bool]:
        return await self.folder.io(self._versions, name)

    def _versions(self, name: str) -> dict[int, bool]:
        found: dict[str, set[int]] = {WORKFLOW_SUFFIX: set(), RETIRED_SUFFIX: set()}
        for file in os.listdir(self.folder.directory):
            stem, suffix = os.path.splitext(file)
            owner, _, number = stem.rpartition(".")
            if owner == name and suffix in found and number.isdigit():
                found[suffix].add(int(number))
        return {number: number in found[RETIRED_SUFFIX] for number in sorted(found[WORKFLOW_SUFFIX])}

    async def read(self, name: str, version: int) -> bytes | None:
        return await self.folder.io(read, self._path(name, version, WORKFLOW_SUFFIX), "all")

    async def retire(self, name: str, version: int) -> bool:
        return await self.folder.io(self._retire, name, version, creates=True)

    def _retire(self, name: str, version: int) -> bool:
        if not os.path.exists(self._path(name, version, WORKFLOW_SUFFIX)):
            return False
        create(self._path(name, version, RETIRED_SUFFIX), b"")
        return True

    async def names(self) -> list[str]:
        return await self.folder.io(lambda: sorted({file.split(".")[0] for file in os.listdir(self.folder.directory)
                                                    if file.endswith(WORKFLOW_SUFFIX)}))


class FileApiKeys(ApiKeys):
    """`NAME.apikey` (made with a hard link, so of two adders of one name one wins) and `DIGEST.digest`, the
    live key's name; revoking rewrites the first and removes the second."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def add(self, record: KeyRecord) -> bool:
        return await self.folder.io(self._add, record, creates=True)

    def _add(self, record: KeyRecord) -> bool:
        if not create(self.folder.path(record.name, API_KEY_SUFFIX), record.model_dump_json().encode()):
            return False
        write(self.folder.path(record.digest, DIGEST_SUFFIX), record.name.encode())
        return True

    async def by_digest(self, digest: str) -> KeyRecord | None:
        return await self.folder.io(self._by_digest, digest)

    def _by_digest(self, digest: str) -> KeyRecord | None:
        name = read(self.folder.path(digest, DIGEST_SUFFIX), "all")
        raw = None if name is None else read(self.folder.path(name.decode(), API_KEY_SUFFIX), "all")
        record = None if raw is None else KeyRecord.model_validate_json(raw)
        return record if record is not None and record.revoked_at is None else None

    async def listed(self) -> list[KeyRecord]:
        return await self.folder.io(self._listed)

    def _listed(self) -> list[KeyRecord]:
        names = sorted(file[: -len(API_KEY_SUFFIX)] for file in os.listdir(self.folder.directory)
                       if file.endswith(API_KEY_SUFFIX))
        raws = (read(self.folder.path(name, API_KEY_SUFFIX), "all") for name in names)
        return [KeyRecord.model_validate_json(raw) for raw in raws if raw is not None]

    async def revoke(self, name: str, at: float) -> KeyRecord | None:
        return await self.folder.io(self._revoke, name, at)

    def _revoke(self, name: str, at: float) -> KeyRecord | None:
        raw = read(self.folder.path(name, API_KEY_SUFFIX), "all")
        if raw is None:
            return None
        record = KeyRecord.model_validate_json(raw)
        if record.revoked_at is None:
            record.revoked_at = at
            write(self.folder.path(name, API_KEY_SUFFIX), record.model_dump_json().encode())
        unlink(self.folder.path(record.digest, DIGEST_SUFFIX))
        return record


@contextlib.contextmanager
def _locked(path: str) -> Iterator[None]:
    """A short lock across instances: a file made with O_EXCL (atomic on a local disk and on NFS v3 and on, where
    flock is not), taken over once older than LOCK_STALE_SECONDS."""
    while not _made(path):
        modified = _modified(path)  # 0: released meanwhile (never unlink what may be a new holder's lock)
        if modified and time.time() - modified > LOCK_STALE_SECONDS:
            unlink(path)
        else:
            time.sleep(LOCK_WAIT_SECONDS)
    try:
        yield
    finally:
        unlink(path)


def _made(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    except FileExistsError:
        return False
    return True


def _state(path: str) -> Any:
    """A meter's state as its last holder of the lock left it; None when there is none (or a holder died
    mid-write: the meter starts afresh)."""
    raw = read(path, "all")
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def _overwrite(path: str, data: bytes) -> None:
    """In place, under the meter's lock (every reader takes it too): no new file per write."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, data)
        os.ftruncate(descriptor, len(data))
    finally:
        os.close(descriptor)


class FileMeters(Meters):
    """`NAME.bucket` (tokens, when) and `NAME.leases` ({task id: until}), read and written only under
    `NAME.lock`. The work runs in a thread: the lock may be waited for."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder

    async def take(self, name: str, per_minute: int, now: float) -> float:
        return await self.folder.io(self._take, name, per_minute, now, creates=True)

    def _take(self, name: str, per_minute: int, now: float) -> float:
        path = self.folder.path(name, BUCKET_SUFFIX)
        with _locked(self.folder.path(name, LOCK_SUFFIX)):
            tokens, last = _state(path) or (float(per_minute), now)
            tokens, wait = refill(tokens, last, now, per_minute)
            _overwrite(path, json.dumps([tokens, now]).encode())
        return float(wait)

    async def lease(self, name: str, task_id: str, most: int, until: float) -> bool:
        return await self.folder.io(self._lease, name, task_id, most, until, creates=True)

    def _lease(self, name: str, task_id: str, most: int, until: float) -> bool:
        with _locked(self.folder.path(name, LOCK_SUFFIX)):
            held = self._live(name, time.time())
            if task_id not in held and len(held) >= most:
                return False
            held[task_id] = until
            _overwrite(self.folder.path(name, LEASES_SUFFIX), json.dumps(held).encode())
        return True

    def _live(self, name: str, now: float) -> dict[str, float]:
        held: dict[str, float] = _state(self.folder.path(name, LEASES_SUFFIX)) or {}
        return {task_id: until for task_id, until in held.items() if until > now}

    async def release(self, name: str, task_id: str) -> None:
        await self.folder.io(self._release, name, task_id, creates=True)

    def _release(self, name: str, task_id: str) -> None:
        with _locked(self.folder.path(name, LOCK_SUFFIX)):
            held = self._live(name, time.time())
            if held.pop(task_id, None) is not None:
                _overwrite(self.folder.path(name, LEASES_SUFFIX), json.dumps(held).encode())

    async def leased(self, name: str, now: float) -> int:
        return await self.folder.io(self._leased, name, now, creates=True)

    def _leased(self, name: str, now: float) -> int:
        with _locked(self.folder.path(name, LOCK_SUFFIX)):
            return len(self._live(name, now))


class _DaySums:
    """What this process has read of a day's ledger files: each file's offset, and GPU seconds by key."""

    def __init__(self) -> None:
        self.offsets: dict[str, int] = {}
        self.gpu: dict[str, float] = {}


class FileUsage(UsageLedger):
    """A folder per day, and in it a file of JSON lines per instance, appended by that instance alone (appends
    from several NFS clients to one file can tear; one writer's cannot), so recording a run is one append. A
    quota reads only what the day's files gained since this process last looked."""

    def __init__(self, folder: Folder) -> None:
        self.folder = folder
        self.name = f"{uuid.uuid4().hex}{USAGE_SUFFIX}"  # this instance's file of each day
        self._recorded: dict[str, set[str]] = {}  # day: task ids recorded here (a retried write adds nothing)
        self._sums: dict[str, _DaySums] = {}

    def _day(self, day: str) -> str:
        return os.path.join(self.folder.directory, check_task_id(day))

    async def record(self, entry: UsageEntry) -> None:
        recorded = self._recorded.setdefault(entry.day, set())
        if entry.task_id in recorded:
            return
        await self.folder.io(self._append, entry.day, entry.model_dump_json().encode() + b"\n")
        recorded.add(entry.task_id)
        for day in sorted(self._recorded)[:-RECENT_DAYS]:
            del self._recorded[day]  # a retried write comes within moments, not days

    def _append(self, day: str, line: bytes) -> None:
        path = os.path.join(self._day(day), self.name)
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except FileNotFoundError:
            os.makedirs(self._day(day), exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)

    async def entries(self, day: str) -> list[UsageEntry]:
        return await self.folder.io(self._entries, day)

    def _files(self, day: str) -> list[str]:
        try:
            return [name for name in os.listdir(self._day(day)) if name.endswith(USAGE_SUFFIX)]
        except FileNotFoundError:
            return []

    def _entries(self, day: str) -> list[UsageEntry]:
        lines = (line for name in self._files(day)
                 for line in complete_lines_from(os.path.join(self._day(day), name), 0).splitlines())
        return [UsageEntry.model_validate_json(line) for line in lines if line]

    async def gpu_seconds(self, key: str, days: list[str]) -> list[float]:
        return await self.folder.io(lambda: [self._summed(day).get(key, 0.0) for day in days])

    def _summed(self, day: str) -> dict[str, float]:
        sums = self._sums.setdefault(day, _DaySums())
        for name in self._files(day):
            gained = complete_lines_from(os.path.join(self._day(day), name), sums.offsets.get(name, 0))
            sums.offsets[name] = sums.offsets.get(name, 0) + len(gained)
            for line in gained.splitlines():
                entry = UsageEntry.model_validate_json(line)
                sums.gpu[entry.key] = sums.gpu.get(entry.key, 0.0) + entry.gpu_seconds
        return sums.gpu


def _modified(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return 0.0


def file_stores(directory: str | Path, ttl: float, stale_after: float, *, in_threads: bool | None = None) -> Stores:
    """Every concern in one folder; `in_threads` decides where file work runs (None: by where it lives)."""
    folder, published = Folder(str(directory), in_threads), Folder(os.path.join(directory, "published"), in_threads)
    access, usage = (Folder(os.path.join(directory, name), in_threads) for name in ("access", "usage"))

    async def release() -> None:
        for each in (folder, published, access, usage):
            await each.close()

    return Stores(FileRecords(folder, ttl, stale_after), FileLog(folder), FileCancels(folder), FileShared(folder),
                  FileJobs(folder, ttl), FileIdempotency(folder), FileWorkflows(published), FileApiKeys(access),
                  FileMeters(access), FileUsage(usage), release)
