"""What every ComfyUI host shares: a readiness flag and one background task that keeps it current."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod


class Lifecycle(ABC):
    def __init__(self) -> None:
        self.restarts = 0
        self._ready = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        return self.ready

    async def start(self) -> None:
        self._task = asyncio.create_task(self._main(), name=type(self).__name__)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    @abstractmethod
    async def _main(self) -> None:
        """Runs until stop(): launches or watches ComfyUI and keeps `ready` true only while it answers."""
