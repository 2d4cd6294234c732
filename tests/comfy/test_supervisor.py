"""The agent as a real process, supervising a ComfyUI it launched (the double, or a scripted stand-in)."""

from __future__ import annotations

import os
import signal
import socket
import textwrap
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from agent_process import AgentProcess, double_settings, free_port
from double_helpers import save_prompt
from procs import alive, children, group_members, state
from waiting import wait_for

DOUBLE_DIR = Path(__file__).resolve().parent.parent / "comfy_double"


def launching(tmp_path: Path, comfyui_dir: Path = DOUBLE_DIR, **env: str) -> AgentProcess:
    return AgentProcess(tmp_path, {**double_settings(tmp_path), "COMFYUI_DIR": str(comfyui_dir), "STOP_GRACE": "3",
                                   **env})


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProcess]:
    process = launching(tmp_path)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def test_port_opens_at_once_and_readiness_waits_for_comfyui(tmp_path: Path) -> None:
    """ComfyUI's start is held until the test opens its gate: the agent's port answers before, however slowly
    this machine runs either of them (how soon the port opens is bench/startup.py's figure)."""
    gate = tmp_path / "comfyui-may-start"
    agent = launching(tmp_path, DOUBLE_STARTUP_GATE=str(gate))
    try:
        wait_for(lambda: _status(agent, "/healthz") == 200, 60, "/healthz")
        assert _status(agent, "/readyz") == 503
        refused = agent.run(save_prompt(1))
        assert refused.status_code == 503 and refused.headers["Retry-After"]
        gate.touch()
        agent.wait_ready(60)
        assert agent.run(save_prompt(1)).status_code == 200
    finally:
        agent.stop()


def _status(agent: AgentProcess, path: str) -> int | None:
    try:
        return agent.http.get(path).status_code
    except httpx.TransportError:
        return None


@pytest.mark.parametrize("how", ["sigkill", "crash_in_node"])
def test_comfyui_dying_mid_run_is_reported_as_a_crash_and_it_comes_back(agent: AgentProcess, how: str) -> None:
    """The run would wait out RUN_TIMEOUT (an hour) were the death not noticed: its answer says it was."""
    comfyui = agent.comfyui_pid()
    fault = "crash" if how == "crash_in_node" else None
    thread, reply = agent.run_in_background(save_prompt(1, delay=1.0 if fault else 30, fault=fault))
    if how == "sigkill":
        agent.wait_comfyui(lambda info: info["running"], "the run's prompt executing")
        os.kill(comfyui, signal.SIGKILL)
    else:
        wait_for(lambda: not alive(comfyui), 60, "ComfyUI to crash in the node")
    thread.join(120)
    response = reply["response"]
    assert response.status_code == 502, response.text
    assert response.json()["message"] == "ComfyUICrashed"
    wait_for(lambda: state(comfyui) is None, 60, "the dead ComfyUI to be reaped")
    agent.wait_ready(30)
    assert agent.comfyui_pid() != comfyui
    after = agent.run(save_prompt(0x445566))
    assert after.status_code == 200
    assert agent.http.get("/readyz").json()["restarts"] >= 1


def test_sigterm_stops_comfyui_and_leaves_no_orphan_or_zombie(tmp_path: Path) -> None:
    agent = launching(tmp_path)
    agent.wait_ready()
    comfyui = agent.comfyui_pid()
    group = os.getpgid(comfyui)
    assert group != os.getpgid(agent.proc.pid), "ComfyUI runs in a process group of its own"
    assert agent.stop(signal.SIGTERM) == 0
    assert state(comfyui) is None
    assert group_members(group) == []
    assert "comfyui.stopped" in agent.log()


def test_agent_killed_outright_takes_comfyui_with_it(tmp_path: Path) -> None:
    agent = launching(tmp_path)
    agent.wait_ready()
    comfyui = agent.comfyui_pid()
    agent.stop(signal.SIGKILL)
    wait_for(lambda: not alive(comfyui), 60, "ComfyUI to die with its parent")


def test_busy_port_is_named_in_the_log_and_startup_waits(tmp_path: Path) -> None:
    port = free_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", port))
    blocker.listen()
    agent = launching(tmp_path, COMFYUI_PORT=str(port), RESTART_BACKOFF_MAX="0.3")
    try:
        wait_for(lambda: "comfyui.port_busy" in agent.log(), 60, "the busy-port log line")
        assert _status(agent, "/readyz") == 503
        assert children(agent.proc.pid) == []
        blocker.close()
        agent.wait_ready(30)
    finally:
        blocker.close()
        agent.stop()


FAKE_COMFYUI = """
import os, sys, time
from aiohttp import web
out = sys.stdout.buffer
out.write(b"x" * 5_000_000)
out.write(b"\\nafter the long line\\n")
out.write(b"bad bytes \\xff\\xfe here\\n")
out.flush()
port = int(sys.argv[sys.argv.index("--port") + 1])
if os.environ.get("FAKE_EXIT"):
    sys.exit(3)
app = web.Application()
app.router.add_get("/system_stats", lambda request: web.json_response({"system": {}}))
web.run_app(app, host="127.0.0.1", port=port, print=None)
"""


def fake_comfyui(tmp_path: Path) -> Path:
    directory = tmp_path / "fake"
    directory.mkdir()
    (directory / "main.py").write_text(textwrap.dedent(FAKE_COMFYUI))
    return directory


def test_output_is_forwarded_line_by_line_and_never_blocks_comfyui(tmp_path: Path) -> None:
    agent = launching(tmp_path, fake_comfyui(tmp_path))
    try:
        agent.wait_ready(30)
        log = agent.log()
        assert "more bytes" in log and "after the long line" in log
        assert max(len(line) for line in log.splitlines()) < 20_000
        assert "bad bytes" in log
    finally:
        agent.stop()


def test_restarts_continue_with_a_bounded_backoff(tmp_path: Path) -> None:
    agent = launching(tmp_path, fake_comfyui(tmp_path), FAKE_EXIT="1", RESTART_BACKOFF_MAX="0.4")
    try:
        wait_for(lambda: agent.log().count("comfyui.started") >= 5, 60, "five launches")
        delays = [float(line.split("restart_in=")[1].split()[0])
                  for line in agent.log().splitlines() if "restart_in=" in line]
        assert delays and max(delays) <= 0.4
        assert "code=3" in agent.log()
    finally:
        agent.stop()


def test_sigterm_lets_open_runs_finish_then_leaves_nothing_behind(tmp_path: Path) -> None:
    agent = launching(tmp_path, PRESTOP_GRACE="20")
    agent.wait_ready()
    comfyui = agent.comfyui_pid()
    thread, reply = agent.run_in_background(save_prompt(0x123123, delay=2.0))
    agent.wait_comfyui(lambda info: info["running"], "the run's prompt executing")
    agent.proc.send_signal(signal.SIGTERM)
    agent.wait_log("agent.stopping")
    refused = agent.http.post("/api/run", json=save_prompt(1))
    assert refused.status_code == 503 and "stopping" in refused.json()["error"]
    thread.join(30)
    assert reply["response"].status_code == 200
    assert agent.stop() == 0
    assert state(comfyui) is None


def test_a_model_put_on_the_nas_is_listed_and_offered_without_a_restart(agent: AgentProcess, tmp_path: Path) -> None:
    """The agent tells the ComfyUI it launches of the NAS model folders (`--extra-model-paths-config`): a model
    copied there is in ComfyUI's lists, and the workflows' model pickers offer it, with ComfyUI running on."""
    before = agent.comfyui_pid()
    models = tmp_path / "nas" / "models"
    (models / "checkpoints" / "from-nas.safetensors").write_bytes(b"listed, never loaded")
    (models / "loras" / "styles").mkdir()
    (models / "loras" / "styles" / "ink.safetensors").write_bytes(b"listed, never loaded")
    (models / "checkpoints" / "notes.txt").write_text("not a model")
    checkpoints = agent.comfyui("/object_info/CheckpointLoaderSimple")["CheckpointLoaderSimple"]
    assert checkpoints["input"]["required"]["ckpt_name"][0] == ["from-nas.safetensors", "random-sd15.safetensors"]
    assert agent.comfyui("/models/loras") == ["styles/ink.safetensors"]
    txt2img = agent.http.get("/api/workflows/txt2img").json()
    assert "from-nas.safetensors" in txt2img["parameters"]["properties"]["checkpoint"]["enum"]
    assert agent.comfyui_pid() == before
