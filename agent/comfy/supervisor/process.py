"""One launch of ComfyUI as a child process: its own process group, reaped, never orphaned."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.comfy.supervisor.output import pump

PR_SET_PDEATHSIG = 1
PIPE_DRAIN_SECONDS = 2.0


def _child_setup() -> None:
    """Runs in the child before exec: a process group of its own, killed with the agent if the agent dies."""
    os.setsid()
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class ComfyProcess:
    """A started ComfyUI; `exited` turns true once the process has been reaped."""

    def __init__(self, proc: asyncio.subprocess.Process, emit: Callable[[str], None]) -> None:
        self._proc = proc
        self.pid = proc.pid
        self.returncode: int | None = None
        self._done = asyncio.Event()
        self._watch = asyncio.create_task(self._reap(emit), name=f"comfyui-{proc.pid}")

    @classmethod
    async def spawn(cls, python: str, directory: Path, args: Sequence[str], env: dict[str, str],
                    emit: Callable[[str], None]) -> ComfyProcess:
        proc = await asyncio.create_subprocess_exec(
            python, "main.py", *args, cwd=directory, env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, preexec_fn=_child_setup,
        )
        return cls(proc, emit)

    async def _reap(self, emit: Callable[[str], None]) -> None:
        """Exit is noticed at once, even while a leftover grandchild still holds the output pipe open."""
        assert self._proc.stdout is not None
        forwarding = asyncio.create_task(pump(self._proc.stdout, emit))
        self.returncode = await self._proc.wait()
        self._done.set()
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(PIPE_DRAIN_SECONDS):
                await forwarding
        forwarding.cancel()

    @property
    def exited(self) -> bool:
        return self._done.is_set()

    async def wait(self) -> int | None:
        await self._done.wait()
        return self.returncode

    def _signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)

    async def stop(self, grace: float) -> int | None:
        """SIGTERM to the whole group, SIGKILL after `grace`, and always wait, so nothing is left behind."""
        if not self.exited:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._done.wait()
        if not self.exited:
            self._signal_group(signal.SIGKILL)
        return await self.wait()
