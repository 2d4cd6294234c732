"""Content addresses: `blake3:<64 lowercase hex>`, the form Comfy API v2 names assets by (blake3 is the hash v2
names; the `blake3` package binds its reference implementation)."""

from __future__ import annotations

import asyncio
import re

import blake3

HASH = re.compile(r"blake3:[0-9a-f]{64}")
THREAD_ABOVE = 1 << 20  # bytes: hashing more than this runs in a thread (blake3 releases the GIL)


def content_hash(data: bytes) -> str:
    return "blake3:" + blake3.blake3(data).hexdigest()


async def hash_of(data: bytes) -> str:
    return await asyncio.to_thread(content_hash, data) if len(data) > THREAD_ABOVE else content_hash(data)


def is_hash(value: object) -> bool:
    return isinstance(value, str) and HASH.fullmatch(value) is not None
