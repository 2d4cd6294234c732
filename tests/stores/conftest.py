"""Every task store, for the contract suite: memory, a folder (worked inline as on a local disk, and in threads as
on a NAS), and the real Redis (never skipped)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio

from agent.stores import TaskStore, open_store
from agent.stores.file import FileStore

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TTL = 3600.0
STALE_AFTER = 30.0


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
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TaskStore]:
    folder = f"file://{tmp_path / 'tasks'}"
    url = {"memory": "memory://", "file": folder, "file-nas": folder, "redis": REDIS_URL}[request.param]
    if request.param == "redis":
        await clean_redis()
    opened = open_store(url, TTL, STALE_AFTER)
    if isinstance(opened, FileStore):
        opened.in_threads = request.param == "file-nas"
    try:
        yield opened
    finally:
        await opened.close()
