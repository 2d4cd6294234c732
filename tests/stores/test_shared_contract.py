"""The rules every keeper of shared documents follows (agent/stores/shared.py), on every backend."""

from __future__ import annotations

import pytest

from agent.errors import RequestParamsError
from agent.stores import Stores


async def test_a_shared_document_is_kept_whole_and_replaced(stores: Stores) -> None:
    shared = stores.shared
    assert await shared.get_shared("object-info") is None
    await shared.put_shared("object-info", b'{"A": {"b": [1]}}')
    await shared.put_shared("object-info", b'{"A": {"b": [2]}}')
    assert await shared.get_shared("object-info") == b'{"A": {"b": [2]}}'
    with pytest.raises(RequestParamsError):
        await shared.put_shared("../escape", b"")


async def test_a_deleted_document_is_gone_once(stores: Stores) -> None:
    await stores.shared.put_shared("asset-1", b"{}")
    assert await stores.shared.delete_shared("asset-1") is True
    assert await stores.shared.get_shared("asset-1") is None
    assert await stores.shared.delete_shared("asset-1") is False
