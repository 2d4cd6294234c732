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
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from procs import children
from waiting import COMFYUI_START, EVENTUALLY, wait_for

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
        self.http = httpx.Client(base_url=self.url, timeout=2 * EVENTUALLY, headers=token)
        self.comfyui_url = f"http://127.0.0.1:{env['COMFYUI_PORT']}" if "COMFYUI_PORT" in env else None

    def wait_ready(self, timeout: float = EVENTUALLY, path: str = "/readyz") -> None:
        """Until `path` answers 200 (a gateway has no ComfyUI to be ready: a path its application serves)."""
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

    def wait_log(self, line: str, timeout: float = EVENTUALLY) -> None:
        """Until the agent (or its ComfyUI) has written `line` to the log."""
        wait_for(lambda: line in self.log(), timeout, f"{line!r} in the agent's log")

    def comfyui(self, path: str) -> Any:
        """GET `path` from the ComfyUI it supervises (the double's `/__double__/info`, ComfyUI's `/queue`)."""
        assert self.comfyui_url is not None, "this agent was not given COMFYUI_PORT"
        return httpx.get(self.comfyui_url + path, timeout=EVENTUALLY).json()

    def wait_comfyui(self, condition: Callable[[dict[str, Any]], object], what: str, path: str = "/__double__/info",
                     timeout: float = EVENTUALLY) -> dict[str, Any]:
        """The first answer of its ComfyUI at `path` for which `condition` holds: a prompt running, N queued..."""

        def seen() -> dict[str, Any] | None:
            answer: dict[str, Any] = self.comfyui(path)
            return answer if condition(answer) else None

        return wait_for(seen, timeout, f"ComfyUI ({path}): {what}")

    def control_comfyui(self, **knobs: Any) -> None:
        """Set knobs of the double it supervises (tests/comfy_double/README.md)."""
        assert self.comfyui_url is not None, "this agent was not given COMFYUI_PORT"
        httpx.post(f"{self.comfyui_url}/__double__/control", json=knobs, timeout=EVENTUALLY).raise_for_status()

    @contextmanager
    def comfyui_held(self) -> Iterator[None]:
        """Inside the block every node of its ComfyUI (the double) waits at the hold as it starts: runs last until
        the test leaves the block, however slow this machine is."""
        self.control_comfyui(hold=True)
        try:
            yield
        finally:
            with suppress(httpx.TransportError):  # a ComfyUI the test killed holds nothing
                self.control_comfyui(hold=False)

    def metric(self, name: str, **labels: str) -> float:
        """One sample of the agent's `/metrics` (0 when absent): events a test may wait for, as runs ended."""
        for family in text_string_to_metric_families(self.http.get("/metrics").text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(key) == value for key, value in labels.items()):
                    return float(sample.value)
        return 0.0

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

    def stop(self, sig: int = signal.SIGTERM, timeout: float = EVENTUALLY) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self.http.close()
        self._log.close()
        return code


def double_settings(workdir: Path) -> dict[str, str]:
    """The settings of an agent that launches the test double as its ComfyUI, everything of it under `workdir`:
    its temp folder too, which ComfyUI empties as it starts and stops (left to its default, the one folder
    tests/comfy_double/temp, every double running on this machine would empty the others' previews); its `user/`
    too, which would otherwise be made in the source tree."""
    return {"COMFYUI_DIR": str(DOUBLE_DIR), "COMFYUI_PYTHON": sys.executable, "COMFYUI_PORT": str(free_port()),
            "COMFYUI_TEMP_DIR": str(double_temp(workdir)), "COMFYUI_USER_DIR": str(workdir / "comfyui-user"),
            "NAS_DIR": str(workdir / "nas")}


def double_temp(workdir: Path) -> Path:
    """The `--temp-directory` of the double launched for `workdir` (its previews are in its `temp/`)."""
    return workdir / "comfyui-temp"


def launch_with_double(workdir: Path, **env: str) -> AgentProcess:
    """The agent as FC runs it, supervising the test double as its ComfyUI (not yet ready: `wait_ready`)."""
    workdir.mkdir(parents=True, exist_ok=True)
    return AgentProcess(workdir, {**double_settings(workdir), "LOG_LEVEL": "warning", **env})


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
        "COMFYUI_USER_DIR": str(workdir / "comfyui-user"),  # not the checkout's, which every test would share
        **env,
    }
    process = AgentProcess(workdir, {key: value for key, value in settings.items() if value})
    try:
        process.wait_ready(COMFYUI_START)
        yield process
    finally:
        process.stop()
