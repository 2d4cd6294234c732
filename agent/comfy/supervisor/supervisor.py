"""Keep one ComfyUI running: launch it, know when it is ready, restart it when it dies, stop it cleanly."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from pathlib import Path

from agent.comfy.client import ComfyClient
from agent.comfy.device import Device, detect
from agent.comfy.lifecycle import Lifecycle
from agent.comfy.supervisor.nas import prepare_nas, prepare_user_folder, write_model_paths
from agent.comfy.supervisor.output import Levels
from agent.comfy.supervisor.process import ComfyProcess
from agent.config import LaunchSettings, flag_value
from agent.logs import log_event, one_line

logger = logging.getLogger("agent.supervisor")
output_logger = logging.getLogger("comfyui")

READY_POLL_SECONDS = 0.1
FIRST_BACKOFF = 1.0
HIDDEN_FROM_COMFYUI = ("AGENT_TOKEN",)
# ComfyUI (0.3.6x on) keeps an index of assets and jobs in SQLite, by default a file in its own user/: one file for
# every instance when ComfyUI is on a NAS, which only the first can lock, and a migration at every cold start. The
# agent reads nothing from it (tasks live in its own store), so each ComfyUI keeps its database in memory.
IN_MEMORY_DATABASE = "sqlite:///:memory:"


def port_is_free(port: int) -> bool:
    """True when nothing listens on 127.0.0.1:port, so whatever answers there later is our child."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def on_cpu(settings: LaunchSettings, device: Device) -> bool:
    """Whether ComfyUI must be told `--cpu`: asked for, or `auto` on a machine without a GPU (ComfyUI would
    otherwise stop at its first CUDA call)."""
    if "--cpu" in settings.args:
        return False
    return settings.device == "cpu" or (settings.device == "auto" and device is Device.CPU)


def comfyui_args(settings: LaunchSettings, device: Device, model_paths: Path | None = None) -> list[str]:
    args = ["--listen", "127.0.0.1", "--port", str(settings.port)]
    if settings.nas_dir is not None:
        args += ["--input-directory", str(settings.nas_dir / "input")]
    if model_paths is not None:
        args += ["--extra-model-paths-config", str(model_paths)]
    args += ["--output-directory", str(settings.output_dir)]
    if settings.temp_dir is not None:
        args += ["--temp-directory", str(settings.temp_dir)]
    args += ["--user-directory", str(settings.user_dir)]
    if flag_value(settings.args, "--database-url") is None:
        args += ["--database-url", IN_MEMORY_DATABASE]
    if on_cpu(settings, device):
        args.append("--cpu")
    return args + list(settings.args)


def _child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in HIDDEN_FROM_COMFYUI}
    env["PYTHONUNBUFFERED"] = "1"
    return env


class _Forward:
    """ComfyUI's lines are already bounded by the splitter; they keep their text, minus control characters, and get
    the level their content shows."""

    def __init__(self) -> None:
        self.levels = Levels()

    def __call__(self, line: str) -> None:
        output_logger.log(self.levels.of(line), one_line(line))


class _NeverStarted:
    exited = True


class Supervisor(Lifecycle):
    """The agent's ComfyUI child; `current` is the process a run is sent to, `ready` whether it answers."""

    def __init__(self, settings: LaunchSettings, client: ComfyClient) -> None:
        super().__init__()
        self.settings = settings
        self.client = client
        self.process: ComfyProcess | None = None

    @property
    def ready(self) -> bool:
        return super().ready and self.process is not None and not self.process.exited

    @property
    def current(self) -> ComfyProcess | _NeverStarted:
        return self.process or _NeverStarted()

    async def stop(self) -> None:
        """Idempotent: the agent stops ComfyUI first on SIGTERM, and again in its cleanup."""
        await super().stop()
        if self.process is not None and not self.process.exited:
            code = await self.process.stop(self.settings.stop_grace)
            log_event(logger, "comfyui.stopped", pid=self.process.pid, code=code)

    async def _main(self) -> None:
        """A ComfyUI that got as far as answering is restarted after FIRST_BACKOFF (a crash mid-run); one that
        never answered waits twice as long each time, up to RESTART_BACKOFF_MAX (a start that keeps failing)."""
        loop = asyncio.get_running_loop()
        first = min(FIRST_BACKOFF, self.settings.restart_backoff_max)
        backoff = first / 2
        while True:
            started = loop.time()
            answered = await self._run_once()
            uptime = loop.time() - started
            backoff = first if answered else min(backoff * 2, self.settings.restart_backoff_max)
            log_event(logger, "comfyui.restart_scheduled", level=logging.WARNING, uptime=round(uptime, 1),
                      restart_in=backoff)
            await asyncio.sleep(backoff)
            self.restarts += 1

    async def _run_once(self) -> bool:
        """One launch, from spawn to exit; True when ComfyUI answered in between."""
        port = self.settings.port
        if not port_is_free(port):
            log_event(logger, "comfyui.port_busy", level=logging.ERROR, port=port,
                      hint="another process listens on COMFYUI_PORT; choose a free port")
            return False
        await asyncio.to_thread(prepare_user_folder, self.settings.user_dir)
        model_paths = None
        if self.settings.nas_dir is not None:
            await asyncio.to_thread(prepare_nas, self.settings.nas_dir)
            model_paths = await asyncio.to_thread(write_model_paths, self.settings.nas_dir, self.settings.user_dir)
        device = detect()
        try:
            process = await ComfyProcess.spawn(self.settings.interpreter, Path(self.settings.comfyui_dir),
                                               comfyui_args(self.settings, device, model_paths), _child_env(),
                                               _Forward())
        except OSError as exc:
            log_event(logger, "comfyui.spawn_failed", level=logging.ERROR, error=exc)
            return False
        self.process = process
        log_event(logger, "comfyui.started", pid=process.pid, port=port, device=device.value,
                  cpu=on_cpu(self.settings, device))
        answered = await self._until_ready(process)
        code = await process.wait()
        self._ready.clear()
        log_event(logger, "comfyui.exited", level=logging.WARNING, pid=process.pid, code=code)
        return answered

    async def _until_ready(self, process: ComfyProcess) -> bool:
        loop = asyncio.get_running_loop()
        started = loop.time()
        deadline = started + self.settings.start_timeout
        while not process.exited:
            if await self.client.is_up():
                self._ready.set()
                log_event(logger, "comfyui.ready", pid=process.pid, seconds=round(loop.time() - started, 2))
                return True
            if loop.time() >= deadline:
                log_event(logger, "comfyui.start_timeout", level=logging.ERROR, pid=process.pid)
                await process.stop(self.settings.stop_grace)
                return False
            await asyncio.sleep(READY_POLL_SECONDS)
        return False
