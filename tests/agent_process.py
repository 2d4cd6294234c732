"""The agent as a real process (`python -m agent`), as FC runs it: for supervision and signal tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from procs import children
from waiting import wait_for

DOUBLE_DIR = Path(__file__).resolve().parent / "comfy_double"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class AgentProcess:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.log_path = workdir / "agent.log"
        full_env = {**os.environ, "AGENT_HOST": "127.0.0.1", "AGENT_PORT": str(self.port),
                    "TASK_STORE": f"file://{workdir / 'tasks'}", "PYTHONUNBUFFERED": "1", **env}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "agent"], cwd=workdir, env=full_env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"
        token = {"Authorization": f"Bearer {env['AGENT_TOKEN']}"} if "AGENT_TOKEN" in env else {}
        self.http = httpx.Client(base_url=self.url, timeout=120, headers=token)
        self.comfyui_url = f"http://127.0.0.1:{env['COMFYUI_PORT']}" if "COMFYUI_PORT" in env else None

    def wait_ready(self, timeout: float = 60, path: str = "/readyz") -> None:
        """Until `path` answers 200 (a gateway has no ComfyUI to be ready: `/healthz`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"agent exited:\n{self.log()[-5000:]}"
            try:
                if self.http.get(path).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"agent not ready after {timeout}s:\n{self.log()[-5000:]}")

    def comfyui_pid(self) -> int:
        kids = children(self.proc.pid)
        assert len(kids) == 1, kids
        return kids[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_log(self, line: str, timeout: float = 10) -> None:
        """Until the agent (or its ComfyUI) has written `line` to the log."""
        wait_for(lambda: line in self.log(), timeout, f"{line!r} in the agent's log")

    def comfyui(self, path: str) -> Any:
        """GET `path` from the ComfyUI it supervises (the double's `/__double__/info`, ComfyUI's `/queue`)."""
        assert self.comfyui_url is not None, "this agent was not given COMFYUI_PORT"
        return httpx.get(self.comfyui_url + path, timeout=10).json()

    def wait_comfyui(self, condition: Callable[[dict[str, Any]], object], what: str, path: str = "/__double__/info",
                     timeout: float = 10) -> dict[str, Any]:
        """The first answer of its ComfyUI at `path` for which `condition` holds: a prompt running, N queued..."""

        def seen() -> dict[str, Any] | None:
            answer: dict[str, Any] = self.comfyui(path)
            return answer if condition(answer) else None

        return wait_for(seen, timeout, f"ComfyUI ({path}): {what}")

    def run(self, prompt: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.http.post("/api/run", json=prompt, **kwargs)

    def run_in_background(self, prompt: dict[str, Any]) -> tuple[threading.Thread, dict[str, Any]]:
        """Start a run on a thread; the reply lands in the dict with `at`, the moment it came back."""
        reply: dict[str, Any] = {}

        def call() -> None:
            reply["response"] = self.run(prompt)
            reply["at"] = time.monotonic()

        thread = threading.Thread(target=call)
        thread.start()
        return thread, reply

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.http.close()
        self._log.close()
        return code


def launch_with_double(workdir: Path, **env: str) -> AgentProcess:
    """The agent as FC runs it, supervising the test double as its ComfyUI (not yet ready: `wait_ready`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return AgentProcess(workdir, {"COMFYUI_DIR": str(DOUBLE_DIR), "COMFYUI_PYTHON": sys.executable,
                                  "COMFYUI_PORT": str(free_port()), "NAS_DIR": str(workdir / "nas"),
                                  "LOG_LEVEL": "warning", **env})


@contextmanager
def real_comfyui_agent(workdir: Path, **env: str) -> Iterator[AgentProcess]:
    """An agent launching the real ComfyUI of COMFYUI_DIR / COMFYUI_PYTHON, its NAS under `workdir`, ready."""
    (workdir / "nas" / "input").mkdir(parents=True)
    settings = {
        "COMFYUI_DIR": os.environ.get("COMFYUI_DIR", ""),
        "COMFYUI_PYTHON": os.environ.get("COMFYUI_PYTHON", ""),
        "COMFYUI_PORT": str(free_port()),
        "COMFYUI_ARGS": os.environ.get("COMFYUI_TEST_ARGS", "--cpu"),
        "NAS_DIR": str(workdir / "nas"),
        **env,
    }
    process = AgentProcess(workdir, {key: value for key, value in settings.items() if value})
    try:
        process.wait_ready(120)
        yield process
    finally:
        process.stop()
