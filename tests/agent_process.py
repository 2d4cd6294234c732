"""The agent as a real process (`python -m agent`), as FC runs it: for supervision and signal tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from procs import children


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
        self.http = httpx.Client(base_url=self.url, timeout=120)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"agent exited:\n{self.log()[-5000:]}"
            try:
                if self.http.get("/readyz").status_code == 200:
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
