"""API keys, as the shared store keeps them: a record per name (its scopes, its limits, when it was made and
revoked), found by the digest of its secret; the secret itself is never stored. A revoked key keeps its record
(usage rows still name it) and loses its digest, so it no longer opens anything. tests/stores/test_keys_contract.py
checks every backend.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

KEY_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")  # a store key, a file name and a metric label as it is
RESERVED_NAMES = frozenset({"admin", "anonymous", "other"})  # the token's, an open agent's, the folded label


class Scope(StrEnum):
    RUN = "run"  # submit runs (and cancel its own)
    READ = "read"  # read its own tasks, events, outputs and usage
    ADMIN = "admin"  # everything: every key's tasks, the keys themselves, everyone's usage


class Limits(BaseModel):
    """None: no limit of that kind. Strict: `true` is no number of runs."""

    model_config = ConfigDict(extra="forbid", strict=True)

    requests_per_minute: int | None = Field(default=None, ge=1, le=1_000_000)
    concurrent_runs: int | None = Field(default=None, ge=1, le=100_000)
    gpu_seconds_per_day: float | None = Field(default=None, gt=0)
    gpu_seconds_per_month: float | None = Field(default=None, gt=0)


class KeyRecord(BaseModel):
    name: str
    digest: str  # sha256 of the secret, hex (agent/access/secrets.py)
    prefix: str  # the secret's first characters, to tell keys apart in a list
    scopes: list[Scope]
    limits: Limits = Field(default_factory=Limits)
    created_at: float = Field(default_factory=time.time)
    revoked_at: float | None = None


class ApiKeys(ABC):
    @abstractmethod
    async def add(self, record: KeyRecord) -> bool:
        """Keep a new key; False (nothing kept) when its name is taken, revoked keys' names included."""

    @abstractmethod
    async def by_digest(self, digest: str) -> KeyRecord | None:
        """The live key whose secret has this digest; None for an unknown or revoked one."""

    @abstractmethod
    async def listed(self) -> list[KeyRecord]:
        """Every key, revoked ones included, by name."""

    @abstractmethod
    async def revoke(self, name: str, at: float) -> KeyRecord | None:
        """Revoke it (at once for every instance that asks the store); None when there is no such key. A key
        revoked already keeps its first time."""
