"""Fixtures for the double's own tests: in-process doubles that are always shut down."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from comfy_double.harness import DoubleClient, MakeDouble
from comfy_double.versions import OLDEST


@pytest.fixture
async def make_double(tmp_path: Path) -> AsyncIterator[MakeDouble]:
    """Start doubles with DoubleConfig knobs, each under its own directory of tmp_path; as ComfyUI 0.3.64 unless
    `version` says otherwise, whatever DOUBLE_COMFYUI_VERSION says: these tests compare it with the recordings
    of the version it acts as."""
    started: list[DoubleClient] = []

    async def make(**config: Any) -> DoubleClient:
        config.setdefault("version", OLDEST)
        client = await DoubleClient(tmp_path / f"double{len(started)}", **config).start()
        started.append(client)
        return client

    yield make
    for client in started:
        await client.close()


@pytest.fixture
async def double(make_double: MakeDouble) -> DoubleClient:
    """A double with default settings."""
    return await make_double()
