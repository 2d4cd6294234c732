"""The jobs index: the runs a surface lists back (Comfy API v2's jobs), newest first, each with the labels and
the graph it was submitted with (a task's record holds neither: every poll reads it).

Job ids are time-ordered (`new_job_id`, a UUID version 7), so the index is the ids' own order: a page's cursor is
the last id it gave, and a job added meanwhile never shifts the next page. An entry lives `ttl` seconds from
its creation, read from its id. tests/stores/test_jobs_contract.py checks every backend.
"""

from __future__ import annotations

import os
import time
import uuid
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, Field

JOB_ID_LENGTH = 36


_last = 0  # this process's last id: ids made in one millisecond still follow one another (RFC 9562, 6.2)


def new_job_id(now: float | None = None) -> str:
    """A UUID version 7 (RFC 9562): 48 bits of Unix milliseconds, then random bits; its text sorts by time, and
    two ids this process makes in one millisecond sort in the order they were made."""
    global _last  # noqa: PLW0603 - the one counter of this process
    millis = int((time.time() if now is None else now) * 1000)
    value = _with_version((millis << 80) | int.from_bytes(os.urandom(10), "big"))
    if now is None and value <= _last and value >> 80 == _last >> 80:
        value = _last + 1  # the next id in this millisecond (its 62 low bits are random: a carry is unheard of)
    if now is None:
        _last = value
    return str(uuid.UUID(int=value))


def _with_version(value: int) -> int:
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    return (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 9562 variant


def created_at(job_id: str) -> float | None:
    """When a job id was made, or None when it is not one of `new_job_id`'s."""
    try:
        parsed = uuid.UUID(job_id)
    except ValueError:
        return None
    if len(job_id) != JOB_ID_LENGTH or parsed.version != 7 or str(parsed) != job_id:
        return None
    return (parsed.int >> 80) / 1000


class JobEntry(BaseModel):
    job_id: str
    labels: dict[str, str] = Field(default_factory=dict)
    graph: dict[str, Any] = Field(default_factory=dict)


class JobIndex(ABC):
    def __init__(self, ttl: float) -> None:
        self.ttl = ttl

    def alive(self, job_id: str, now: float | None = None) -> bool:
        made = created_at(job_id)
        return made is not None and (time.time() if now is None else now) - made <= self.ttl

    @abstractmethod
    async def add(self, entry: JobEntry) -> None:
        """Index a new job (its id from `new_job_id`)."""

    @abstractmethod
    async def entry(self, job_id: str) -> JobEntry | None:
        """The job's entry; None when unknown or expired."""

    @abstractmethod
    async def remove(self, job_id: str) -> None:
        """Unindex a job that came to nothing (indexed while its run started, then refused)."""

    @abstractmethod
    async def page(self, before: str | None, limit: int) -> list[str]:
        """Up to `limit` live job ids, newest first, all older than `before` (from the newest when None)."""
