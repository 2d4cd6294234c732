"""The rules every cancel mailbox follows (agent/stores/cancels.py), on every backend."""

from __future__ import annotations

import pytest

from agent.errors import RequestParamsError
from agent.stores import Stores
from stores.conftest import ESCAPING_IDS


async def test_cancel_requests_reach_any_reader(stores: Stores) -> None:
    assert await stores.cancels.cancels_requested(["t-1"]) == set()
    await stores.cancels.request_cancel("t-1")
    assert await stores.cancels.cancels_requested(["t-1", "t-2", "never"]) == {"t-1"}


@pytest.mark.parametrize("bad", ESCAPING_IDS)
async def test_ids_that_could_escape_are_refused(stores: Stores, bad: str) -> None:
    with pytest.raises(RequestParamsError):
        await stores.cancels.request_cancel(bad)
