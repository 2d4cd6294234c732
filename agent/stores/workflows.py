"""Published workflow definitions, by name and version, so that one `POST /api/workflows` is served by every
instance and the gateway at once. A version is never rewritten: publishing again makes the next one (numbered
from 1 by the store, so two publishers at once get two versions), and retiring one leaves it readable for the
tasks that name it. The documents are the API's JSON; the store only keeps them. tests/stores/
test_workflows_contract.py checks every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod


class PublishedWorkflows(ABC):
    @abstractmethod
    async def publish(self, name: str, document: bytes) -> int:
        """Keep `document` as the next version of `name`; returns its number."""

    @abstractmethod
    async def versions(self, name: str) -> dict[int, bool]:
        """Every version of `name` and whether it is retired."""

    @abstractmethod
    async def read(self, name: str, version: int) -> bytes | None: ...

    @abstractmethod
    async def retire(self, name: str, version: int) -> bool:
        """False when there is no such version."""

    @abstractmethod
    async def names(self) -> list[str]:
        """Every name published, sorted."""
