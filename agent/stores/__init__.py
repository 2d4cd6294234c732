"""Where tasks are kept so every instance sees them: one contract (base.py), three stores."""

from __future__ import annotations

from urllib.parse import urlsplit

from agent.stores.base import TaskStore

__all__ = ["TaskStore", "open_store"]


def open_store(url: str, ttl: float, stale_after: float) -> TaskStore:
    """The store a URL names; each is imported only when named (Redis's client alone costs megabytes)."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from agent.stores.memory import MemoryStore

        return MemoryStore(ttl, stale_after)
    if parts.scheme == "file":
        from agent.stores.file import FileStore

        return FileStore(parts.netloc + parts.path, ttl, stale_after)
    if parts.scheme in ("redis", "rediss", "unix"):
        from agent.stores.redis_store import RedisStore

        return RedisStore(url, ttl, stale_after)
    raise ValueError(f"unsupported task store {url!r}")
