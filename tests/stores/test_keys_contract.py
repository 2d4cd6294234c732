"""The rules every keeper of API keys follows (agent/stores/keys.py), on every backend."""

from __future__ import annotations

import asyncio
import time

import pytest

from agent.stores import Stores
from agent.stores.keys import KeyRecord, Limits, Scope

pytestmark = pytest.mark.timeout(30)


def record(name: str, digest: str) -> KeyRecord:
    return KeyRecord(name=name, digest=digest, prefix="cak_abcd", scopes=[Scope.RUN, Scope.READ],
                     limits=Limits(concurrent_runs=4))


async def test_a_key_is_found_by_its_digest_until_revoked(stores: Stores) -> None:
    assert await stores.api_keys.add(record("shop", "a" * 64))
    found = await stores.api_keys.by_digest("a" * 64)
    assert found is not None and found.name == "shop" and found.limits.concurrent_runs == 4
    assert await stores.api_keys.by_digest("b" * 64) is None
    revoked = await stores.api_keys.revoke("shop", 1000.0)
    assert revoked is not None and revoked.revoked_at == 1000.0
    assert await stores.api_keys.by_digest("a" * 64) is None
    again = await stores.api_keys.revoke("shop", 2000.0)
    assert again is not None and again.revoked_at == 1000.0  # the first revocation stands
    assert [key.name for key in await stores.api_keys.listed()] == ["shop"]  # revoked keys stay listed
    assert await stores.api_keys.revoke("nobody", time.time()) is None


async def test_a_name_is_taken_once_even_by_adders_at_once(stores: Stores) -> None:
    added = await asyncio.gather(*(stores.api_keys.add(record("shop", f"{serial:064x}")) for serial in range(8)))
    assert sorted(added) == [False] * 7 + [True]
    await stores.api_keys.revoke("shop", time.time())
    assert not await stores.api_keys.add(record("shop", "f" * 64))  # a revoked key's name stays taken
    assert [key.name for key in await stores.api_keys.listed()] == ["shop"]
