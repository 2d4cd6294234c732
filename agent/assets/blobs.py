"""Where asset bytes live, named by their content address (agent/assets/hashes.py): in the output store's bucket
under its own `assets/` prefix when there is one, else in a folder (the NAS on FC, `ASSETS_DIR`), so every
instance reads what any instance stored. An identical upload finds its bytes there and stores nothing."""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from agent.assets.hashes import is_hash
from agent.buckets.location import Location

if TYPE_CHECKING:
    from agent.buckets.bucket import Bucket

@dataclass(frozen=True)
class Found:
    """Where a blob's bytes are for a reader: a signed URL, or a file on this machine."""

    url: str | None = None
    path: Path | None = None


class Blobs(ABC):
    @abstractmethod
    async def has(self, digest: str) -> bool: ...

    @abstractmethod
    async def put(self, digest: str, data: bytes, content_type: str) -> None:
        """Store the bytes under their hash (the caller hashed them)."""

    @abstractmethod
    async def read(self, digest: str, max_bytes: int) -> bytes | None:
        """The bytes; None when there are none; ValueError when over `max_bytes`."""

    @abstractmethod
    async def find(self, digest: str) -> Found | None: ...


class FolderBlobs(Blobs):
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _path(self, digest: str) -> Path:
        if not is_hash(digest):
            raise ValueError("not a blake3 hash")
        return self.folder / digest.removeprefix("blake3:")

    async def has(self, digest: str) -> bool:
        return await asyncio.to_thread(self._path(digest).is_file)

    async def put(self, digest: str, data: bytes, content_type: str) -> None:
        await asyncio.to_thread(self._write, self._path(digest), data)

    def _write(self, path: Path, data: bytes) -> None:
        """Written aside and renamed: a reader finds the whole blob or none (two writers write the same bytes)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{id(data)}.tmp")
        temp.write_bytes(data)
        os.replace(temp, path)

    async def read(self, digest: str, max_bytes: int) -> bytes | None:
        return await asyncio.to_thread(self._read, self._path(digest), max_bytes)

    @staticmethod
    def _read(path: Path, max_bytes: int) -> bytes | None:
        try:
            if path.stat().st_size > max_bytes:
                raise ValueError(f"larger than the {max_bytes}-byte limit")
            return path.read_bytes()
        except FileNotFoundError:
            return None

    async def find(self, digest: str) -> Found | None:
        path = self._path(digest)
        return Found(path=path) if await asyncio.to_thread(path.is_file) else None


class BucketBlobs(Blobs):
    def __init__(self, bucket: Bucket, location: Location) -> None:
        self.bucket = bucket
        self.location = location

    def _key(self, digest: str) -> str:
        if not is_hash(digest):
            raise ValueError("not a blake3 hash")
        return self.location.key("assets", digest.removeprefix("blake3:"))

    async def has(self, digest: str) -> bool:
        return await self.bucket.exists(self._key(digest))

    async def put(self, digest: str, data: bytes, content_type: str) -> None:
        await self.bucket.put(self._key(digest), data, content_type, size=len(data))

    async def read(self, digest: str, max_bytes: int) -> bytes | None:
        from agent.buckets.bucket import ObjectNotFound, ObjectTooLarge  # obstore is loaded once a bucket is used

        try:
            return await self.bucket.get(self._key(digest), max_bytes)
        except ObjectNotFound:
            return None
        except ObjectTooLarge as exc:
            raise ValueError(str(exc)) from None

    async def find(self, digest: str) -> Found | None:
        key = self._key(digest)
        return Found(url=await self.bucket.signed_url(key)) if await self.bucket.exists(key) else None
