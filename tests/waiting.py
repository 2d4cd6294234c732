"""Waiting for an event instead of sleeping a fixed time: poll what stands for it until it holds, and fail loudly,
naming what never happened, once a deadline has passed. Shared by the tests (threads and asyncio alike)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

INTERVAL = 0.05  # seconds between two looks: the wait ends this long at most after the event
# The one deadline for "a condition that must come true eventually": a hang guard, never a speed bound, so a
# loaded machine passes where a fast one does (TEST_WAIT_SCALE=2 doubles it, and every test's timeout with it:
# tests/conftest.py). It stays well inside those timeouts, so a hang is named by the wait, not by pytest-timeout.
SCALE = float(os.environ.get("TEST_WAIT_SCALE", "1"))
EVENTUALLY = 60.0 * SCALE
# How long a real ComfyUI (the integration tests') may take to first answer: 5-8 s on idle cores with its files
# cached (0.3.64, 0.33.0), 60-126 s seen on two busy cores (imports). A setting, for a slower machine or a ComfyUI
# with many custom nodes; the integration tests' timeouts grow with it.
COMFYUI_START = float(os.environ.get("COMFYUI_TEST_START_TIMEOUT", "300")) * SCALE


def wait_for(condition: Callable[[], T | None], timeout: float, what: str) -> T:
    """Block until `condition()` is truthy and return that value; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(INTERVAL)


async def until(condition: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    """`wait_for` for asyncio: await `condition()` until it is truthy and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(INTERVAL)
