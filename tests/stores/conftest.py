"""Every backend, for the contract suites of each concern: memory, a folder (worked inline as on a local disk, and
in threads as on a NAS), and the real Redis (never skipped)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from agent.stores import Stores, open_store
from agent.stores.file import file_stores

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TTL = 3600.0
STALE_AFTER = 30.0
ESCAPING_IDS = ["../x", "/etc/passwd", "a/b", "a\0b", "x" * 129, "", "..", "a.json", "é", "a b"]  # never a key or file


async def clean_redis() -> None:
    """The test database, emptied; a Redis that does not answer fails the test: CI must not skip it."""
    client = redis.asyncio.Redis.from_url(REDIS_URL, socket_connect_timeout=3)
    try:
        await client.ping()
    except redis.exceptions.ConnectionError as exc:
        pytest.fail(f"Redis at {REDIS_URL} is unreachable ({exc}); the Redis store's tests need it")
    await client.flushdb()
    await client.aclose()


async def shared_store(kind: str, folder: Path) -> str:
    """A store's URL for instances that share one: the test Redis, emptied (`redis`), or a folder in `folder`."""
    if kind == "redis":
        await clean_redis()
        return REDIS_URL
    return f"file://{folder / 'shared-tasks'}"


@pytest.fixture(params=["memory", "file", "file-nas", "redis"])
async def stores(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Stores]:
    if request.param == "redis":
        await clean_redis()
    if request.param.startswith("file"):
        opened = file_stores(tmp_path / "tasks", TTL, STALE_AFTER, in_threads=request.param == "file-nas")
    else:
        opened = open_store({"memory": "memory://", "redis": REDIS_URL}[request.param], TTL, STALE_AFTER)
    try:
        yield opened
    finally:
        await opened.close()
