"""Shared documents: whole values under a name, outside any task, that every instance reads (ComfyUI's
`/object_info` lists, for a gateway that has no ComfyUI; the records of uploaded assets).
tests/stores/test_shared_contract.py checks every backend."""

from __future__ import annotations

from abc import ABC, abstractmethod


class SharedDocuments(ABC):
    @abstractmethod
    async def put_shared(self, name: str, data: bytes) -> None:
        """Keep a document every instance reads; written whole, replacing the last one; it does not expire."""

    @abstractmethod
    async def get_shared(self, name: str) -> bytes | None: ...

    @abstractmethod
    async def delete_shared(self, name: str) -> bool:
        """Forget a document; False when there was none."""
