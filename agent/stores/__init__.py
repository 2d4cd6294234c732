"""Where state is kept so every instance sees it, by concern: task records (records.py), event logs (log.py),
cancel requests (cancels.py), shared documents (shared.py), and the rest `Stores` lists (jobs, idempotency and
API keys, meters, the usage ledger, published workflows), each one small contract with three backends
(memory.py, file.py, redis_store.py). A caller takes only the concern it uses; `open_store` gives one backend's
concerns as a `Stores` bundle. They meet in one place, a records claim (records.py)."""

from __future__ import annotations

from urllib.parse import urlsplit

from agent.stores.bundle import Stores

__all__ = ["Stores", "open_store"]


def open_store(url: str, ttl: float, stale_after: float) -> Stores:
    """The backend a URL names; each is imported only when named (Redis's client alone costs megabytes)."""
    parts = urlsplit(url)
    if parts.scheme == "memory":
        from agent.stores.memory import memory_stores

        return memory_stores(ttl, stale_after)
    if parts.scheme == "file":
        from agent.stores.file import file_stores

        return file_stores(parts.netloc + parts.path, ttl, stale_after)
    if parts.scheme in ("redis", "rediss", "unix"):
        from agent.stores.redis_store import redis_stores

        return redis_stores(url, ttl, stale_after)
    raise ValueError(f"unsupported task store {url!r}")
