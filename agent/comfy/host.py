"""The ComfyUI the agent runs prompts on: its own child, or one already running elsewhere."""

from __future__ import annotations

from typing import Protocol

from agent.comfy.client import ComfyClient
from agent.comfy.prompt import Liveness
from agent.comfy.remote import RemoteComfyUI
from agent.comfy.supervisor import Supervisor
from agent.config import LaunchSettings


class ComfyHost(Protocol):
    restarts: int

    @property
    def ready(self) -> bool: ...

    @property
    def current(self) -> Liveness: ...

    async def wait_ready(self, timeout: float) -> bool: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


def make_host(launch: LaunchSettings | None, client: ComfyClient) -> ComfyHost:
    """`launch`: how to start ComfyUI as the agent's child; None attaches to the one `client` reaches."""
    if launch is not None:
        return Supervisor(launch, client)
    return RemoteComfyUI(client)
