"""Idempotency keys, as Comfy API v2 defines them: single use. The first request that presents a key takes it for
the job it makes; any later one, on any instance, learns the key is taken (no reply is replayed). A request that
made no job gives its key back. A key lives `KEY_LIFE` seconds. tests/stores/test_idempotency_contract.py checks every
backend.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod

KEY_LIFE = 24 * 3600  # v2: "keys expire after 24 hours"


def key_name(key: str) -> str:
    """A caller's key (up to 255 printable characters) as a fixed-length store name."""
    return hashlib.sha256(key.encode()).hexdigest()


class IdempotencyKeys(ABC):
    @abstractmethod
    async def take(self, key: str, job_id: str) -> str | None:
        """Take `key` for `job_id`: None when it is now taken for it, else the job that took it first."""

    @abstractmethod
    async def give_back(self, key: str, job_id: str) -> None:
        """`job_id` was never made: its key is free again (a key another job holds stays taken)."""
