"""The rules every keeper of published workflows follows (agent/stores/workflows.py), on every backend."""

from __future__ import annotations

import asyncio

import pytest

from agent.errors import RequestParamsError
from agent.stores import Stores
from stores.conftest import ESCAPING_IDS


async def test_versions_are_numbered_from_one_and_never_rewritten(stores: Stores) -> None:
    published = stores.workflows
    assert await published.names() == [] and await published.versions("txt2img") == {}
    assert await published.publish("txt2img", b'{"v": 1}') == 1
    assert await published.publish("txt2img", b'{"v": 2}') == 2
    assert await published.publish("upscale", b"{}") == 1
    assert await published.names() == ["txt2img", "upscale"]
    assert await published.versions("txt2img") == {1: False, 2: False}
    assert await published.read("txt2img", 1) == b'{"v": 1}' and await published.read("txt2img", 2) == b'{"v": 2}'
    assert await published.read("txt2img", 3) is None and await published.read("nothing", 1) is None
    assert await published.versions("txt") == {}  # a name's prefix is another name


async def test_a_retired_version_stays_readable_and_numbers_go_on(stores: Stores) -> None:
    published = stores.workflows
    await published.publish("w", b"one")
    await published.publish("w", b"two")
    assert await published.retire("w", 2) and await published.retire("w", 2)  # again: still retired
    assert not await published.retire("w", 3) and not await published.retire("other", 1)
    assert await published.versions("w") == {1: False, 2: True}
    assert await published.read("w", 2) == b"two"
    assert await published.publish("w", b"three") == 3  # a retired number is never given again
    assert await published.versions("other") == {}


async def test_publishers_at_once_get_a_version_each(stores: Stores) -> None:
    numbers = await asyncio.gather(*(stores.workflows.publish("burst", str(serial).encode()) for serial in range(12)))
    assert sorted(numbers) == list(range(1, 13))
    for serial, number in enumerate(numbers):
        assert await stores.workflows.read("burst", number) == str(serial).encode()


@pytest.mark.parametrize("name", ESCAPING_IDS)
async def test_a_name_that_would_escape_is_refused(stores: Stores, name: str) -> None:
    with pytest.raises(RequestParamsError):
        await stores.workflows.publish(name, b"{}")
    with pytest.raises(RequestParamsError):
        await stores.workflows.read(name, 1)
