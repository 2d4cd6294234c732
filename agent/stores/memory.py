"""A backend inside this process: for a single instance and for tests, never for FC (pollers hit any instance).

The four concerns share one `_Held`: a records claim or expiry clears the log and cancel request it holds for
the id, in the same step (nothing else runs between two statements on the event loop)."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from agent.stores.bundle import Stores
from agent.stores.cancels import CancelMailbox
from agent.stores.claims import takes_over
from agent.stores.idempotency import KEY_LIFE, IdempotencyKeys
from agent.stores.jobs import JobEntry, JobIndex
from agent.stores.keys import ApiKeys, KeyRecord
from agent.stores.log import EventLog, LoggedEvent, Wakeups
from agent.stores.meters import Meters, refill
from agent.stores.records import TaskRecords
from agent.stores.shared import SharedDocuments
from agent.stores.usage import UsageEntry, UsageLedger
from agent.stores.workflows import PublishedWorkflows
from agent.tasks.model import Results, Task, check_task_id


@dataclass
class _Held:
    """Tasks kept serialised, so a reader gets its own copy, as from any other backend."""

    tasks: dict[str, str] = field(default_factory=dict)
    results: dict[str, Results] = field(default_factory=dict)
    cancels: set[str] = field(default_factory=set)
    events: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    appended: Wakeups = field(default_factory=Wakeups)
    shared: dict[str, bytes] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    idempotency: dict[str, tuple[str, float]] = field(default_factory=dict)
    workflows: dict[str, list[tuple[bytes, bool]]] = field(default_factory=dict)  # name: (document, retired)
    api_keys: dict[str, KeyRecord] = field(default_factory=dict)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # name: (tokens, when)
    leases: dict[str, dict[str, float]] = field(default_factory=dict)  # name: {task id: until}
    usage: dict[str, dict[str, UsageEntry]] = field(default_factory=dict)  # day: {task id: entry}

    def start_afresh(self, task_id: str) -> None:
        self.cancels.discard(task_id)
        self.events.pop(task_id, None)


class MemoryRecords(TaskRecords):
    def __init__(self, held: _Held, ttl: float, stale_after: float) -> None:
        super().__init__(ttl, stale_after)
        self._held = held

    async def claim(self, task: Task) -> Task | None:
        existing = await self.load(task.task_id)
        replay = self.decide_claim(existing, task)
        if replay is None:
            self._held.results.pop(task.task_id, None)
            if not takes_over(existing, task):
                self._held.start_afresh(task.task_id)
            await self.save(task)
        return replay

    async def save(self, task: Task, results: Results | None = None) -> None:
        task_id = check_task_id(task.task_id)  # the same ids as every other backend, though no path is at stake
        if results is not None:
            self._held.results[task_id] = results
        self._held.tasks[task_id] = task.model_dump_json()

    async def load(self, task_id: str) -> Task | None:
        raw = self._held.tasks.get(check_task_id(task_id))
        if raw is None:
            return None
        task = self.parse(raw)
        if self.expired(task):
            self._held.tasks.pop(task_id, None)
            self._held.results.pop(task_id, None)
            self._held.start_afresh(task_id)
            return None
        return task

    async def get_results(self, task_id: str) -> Results | None:
        return self._held.results.get(task_id)

    async def sweep(self) -> int:
        expired = [task_id for task_id in list(self._held.tasks) if await self.load(task_id) is None]
        return len(expired)


class MemoryCancels(CancelMailbox):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def request_cancel(self, task_id: str) -> None:
        self._held.cancels.add(check_task_id(task_id))

    async def cancels_requested(self, task_ids: Collection[str]) -> set[str]:
        return self._held.cancels.intersection(task_ids)


class MemoryLog(EventLog):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def append_events(self, task_id: str, events: list[tuple[str, dict[str, Any]]]) -> None:
        self._held.events.setdefault(check_task_id(task_id), []).extend(events)
        self._held.appended.wake(task_id)

    async def read_events(self, task_id: str, after: str | None, wait: float) -> list[LoggedEvent]:
        start = int(after) if after is not None and after.isdigit() else 0
        if len(self._held.events.get(task_id, ())) <= start and wait > 0:
            await self._held.appended.wait(check_task_id(task_id), wait)
        logged = self._held.events.get(task_id, [])
        return [LoggedEvent(str(number), kind, data)
                for number, (kind, data) in enumerate(logged[start:], start=start + 1)]


class MemoryShared(SharedDocuments):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def put_shared(self, name: str, data: bytes) -> None:
        self._held.shared[check_task_id(name)] = data

    async def get_shared(self, name: str) -> bytes | None:
        return self._held.shared.get(check_task_id(name))

    async def delete_shared(self, name: str) -> bool:
        return self._held.shared.pop(check_task_id(name), None) is not None


class MemoryJobs(JobIndex):
    def __init__(self, held: _Held, ttl: float) -> None:
        super().__init__(ttl)
        self._held = held

    async def add(self, entry: JobEntry) -> None:
        self._held.jobs[entry.job_id] = entry.model_dump_json()

    async def entry(self, job_id: str) -> JobEntry | None:
        raw = self._held.jobs.get(job_id)
        return JobEntry.model_validate_json(raw) if raw is not None and self.alive(job_id) else None

    async def remove(self, job_id: str) -> None:
        self._held.jobs.pop(job_id, None)

    async def page(self, before: str | None, limit: int) -> list[str]:
        now = time.time()
        for job_id in [job_id for job_id in self._held.jobs if not self.alive(job_id, now)]:
            del self._held.jobs[job_id]
        older = sorted((job_id for job_id in self._held.jobs if before is None or job_id < before), reverse=True)
        return older[:limit]


class MemoryIdempotency(IdempotencyKeys):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def take(self, key: str, job_id: str) -> str | None:
        held = self._held.idempotency.get(key)
        if held is not None and time.time() - held[1] < KEY_LIFE:
            return held[0]
        self._held.idempotency[key] = (job_id, time.time())
        return None

    async def give_back(self, key: str, job_id: str) -> None:
        if self._held.idempotency.get(key, ("",))[0] == job_id:
            del self._held.idempotency[key]


class MemoryWorkflows(PublishedWorkflows):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def publish(self, name: str, document: bytes) -> int:
        versions = self._held.workflows.setdefault(check_task_id(name), [])
        versions.append((document, False))
        return len(versions)

    async def versions(self, name: str) -> dict[int, bool]:
        return {number: retired for number, (_, retired) in enumerate(self._held.workflows.get(name, []), 1)}

    async def read(self, name: str, version: int) -> bytes | None:
        versions = self._held.workflows.get(check_task_id(name), [])
        return versions[version - 1][0] if 0 < version <= len(versions) else None

    async def retire(self, name: str, version: int) -> bool:
        document = await self.read(name, version)
        if document is not None:
            self._held.workflows[name][version - 1] = (document, True)
        return document is not None

    async def names(self) -> list[str]:
        return sorted(self._held.workflows)


class MemoryKeys(ApiKeys):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def add(self, record: KeyRecord) -> bool:
        if record.name in self._held.api_keys:
            return False
        self._held.api_keys[record.name] = record.model_copy()
        return True

    async def by_digest(self, digest: str) -> KeyRecord | None:
        found = next((record for record in self._held.api_keys.values()
                      if record.digest == digest and record.revoked_at is None), None)
        return None if found is None else found.model_copy()

    async def listed(self) -> list[KeyRecord]:
        return [self._held.api_keys[name].model_copy() for name in sorted(self._held.api_keys)]

    async def revoke(self, name: str, at: float) -> KeyRecord | None:
        record = self._held.api_keys.get(name)
        if record is not None and record.revoked_at is None:
            record.revoked_at = at
        return None if record is None else record.model_copy()


class MemoryMeters(Meters):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def take(self, name: str, per_minute: int, now: float) -> float:
        tokens, last = self._held.buckets.get(name, (float(per_minute), now))
        tokens, wait = refill(tokens, last, now, per_minute)
        self._held.buckets[name] = (tokens, now)
        return wait

    async def lease(self, name: str, task_id: str, most: int, until: float) -> bool:
        held = self._live(name, time.time())
        if task_id not in held and len(held) >= most:
            return False
        held[task_id] = until
        return True

    def _live(self, name: str, now: float) -> dict[str, float]:
        held = {task_id: until for task_id, until in self._held.leases.get(name, {}).items() if until > now}
        self._held.leases[name] = held
        return held

    async def release(self, name: str, task_id: str) -> None:
        self._held.leases.get(name, {}).pop(task_id, None)

    async def leased(self, name: str, now: float) -> int:
        return len(self._live(name, now))


class MemoryUsage(UsageLedger):
    def __init__(self, held: _Held) -> None:
        self._held = held

    async def record(self, entry: UsageEntry) -> None:
        self._held.usage.setdefault(entry.day, {}).setdefault(entry.task_id, entry)

    async def entries(self, day: str) -> list[UsageEntry]:
        return list(self._held.usage.get(day, {}).values())

    async def gpu_seconds(self, key: str, days: list[str]) -> list[float]:
        return [sum(entry.gpu_seconds for entry in self._held.usage.get(day, {}).values() if entry.key == key)
                for day in days]


async def _nothing_to_release() -> None:
    return None


def memory_stores(ttl: float, stale_after: float) -> Stores:
    held = _Held()
    return Stores(MemoryRecords(held, ttl, stale_after), MemoryLog(held), MemoryCancels(held), MemoryShared(held),
                  MemoryJobs(held, ttl), MemoryIdempotency(held), MemoryWorkflows(held), MemoryKeys(held),
                  MemoryMeters(held), MemoryUsage(held), _nothing_to_release)
