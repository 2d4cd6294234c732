"""A ComfyUI the agent does not own (COMFYUI_URL): watched over HTTP, never started or stopped."""

from __future__ import annotations

import asyncio
import logging

from agent.comfy.client import ComfyClient
from agent.comfy.lifecycle import Lifecycle
from agent.logs import log_event

logger = logging.getLogger("agent.remote")

POLL_SECONDS = 1.0
FAILURES_TO_DOWN = 2


class RemoteInstance:
    """One up-period of the remote ComfyUI; runs sent to it end when it goes away."""

    def __init__(self) -> None:
        self.exited = False


class RemoteComfyUI(Lifecycle):
    def __init__(self, client: ComfyClient) -> None:
        super().__init__()
        self.client = client
        self.current = RemoteInstance()
        self.current.exited = True

    async def _main(self) -> None:
        failures = 0
        while True:
            if await self.client.is_up():
                failures = 0
                if not self.ready:
                    self.current = RemoteInstance()
                    self._ready.set()
                    log_event(logger, "comfyui.ready", url=self.client.base_url)
            elif self.ready:
                failures += 1
                if failures >= FAILURES_TO_DOWN:
                    self.current.exited = True
                    self._ready.clear()
                    self.restarts += 1
                    log_event(logger, "comfyui.unreachable", level=logging.WARNING, url=self.client.base_url)
            await asyncio.sleep(POLL_SECONDS if self.ready else POLL_SECONDS / 5)
