"""The task store failing under running tasks: Redis restarted, the task folder read-only, the folder full.
Clear errors while it lasts, nothing corrupted, and every run's end written once the store is back.

Every step waits for the event it follows, never for a number of seconds: the runs are held in ComfyUI (the
double's hold) until every one has met the outage (its heartbeat failed: TASK_HEARTBEAT is short), then they end
during it, so each final write meets it too and retries, and the outage ends once the agent has ended them all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent.stores.folder import SPARE_PREFIX
from agent_process import AgentProcess, free_port
from double_helpers import save_prompt
from waiting import EVENTUALLY, wait_for

RUNS = 4
HEARTBEAT = "0.3"  # seconds: held runs write this often, so each meets the outage soon after it starts


class RedisServer:
    """A private redis-server, so the test may kill and restart it without touching the machine's own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no"], stdout=subprocess.DEVNULL)
        wait_for(self.answers, EVENTUALLY, "redis-server to answer PING")

    def answers(self) -> bool:
        return subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True).stdout == b"PONG\n"

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(EVENTUALLY)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is needed for the store fault tests")
    server = RedisServer()
    server.start()
    yield server
    with contextlib.suppress(Exception):
        server.kill()


def start_runs(agent: AgentProcess) -> list[tuple[Any, dict[str, Any]]]:
    """RUNS runs, once every one is in ComfyUI (its task claimed in the store) and the first is held there: the
    fault then lands mid-run for all (call inside `agent.comfyui_held()`)."""
    runs = [agent.run_in_background(save_prompt(0x112233 + index, f"sf{index}")) for index in range(RUNS)]
    agent.wait_comfyui(lambda info: info["prompts_queued"] == RUNS and info["held"], f"all {RUNS} runs queued")
    return runs


def wait_outage_met(agent: AgentProcess) -> None:
    """Until every run in flight has tried to write during the outage, and failed (logged once per run)."""
    wait_for(lambda: agent.log().count("store.write_failed") >= RUNS, EVENTUALLY, f"all {RUNS} runs to meet the outage")


def wait_ended(agent: AgentProcess) -> None:
    """Until the agent has ended every run (released from the hold during the outage): their final writes have
    met the outage and are retrying, and the store may come back."""
    wait_for(lambda: agent.metric("comfyui_agent_runs_total", status="succeeded") == RUNS, EVENTUALLY,
             f"the agent to end all {RUNS} runs")


def finish(runs: list[tuple[Any, dict[str, Any]]]) -> list[Any]:
    for thread, _ in runs:
        thread.join(EVENTUALLY)
    return [reply["response"] for _, reply in runs]


def assert_store_outage_answers(agent: AgentProcess) -> None:
    refused = agent.run(save_prompt(9))
    assert refused.status_code == 503 and refused.json()["message"] == "StoreUnavailable", refused.text
    assert "Retry-After" in refused.headers


def assert_recovered(agent: AgentProcess, responses: list[Any]) -> None:
    for response in responses:
        assert response.status_code == 200, response.text
        assert "X-Task-Store-Error" not in response.headers
        task = agent.http.get(f"/api/tasks/{response.headers['X-Task-Id']}").json()
        assert task["status"] == "succeeded", task
    assert agent.run(save_prompt(0x445566)).status_code == 200


def test_redis_restarted_mid_run(agent_factory: Callable[..., AgentProcess], redis_server: RedisServer) -> None:
    agent = agent_factory(TASK_STORE=f"redis://127.0.0.1:{redis_server.port}/0", TASK_HEARTBEAT=HEARTBEAT)
    with agent.comfyui_held():
        runs = start_runs(agent)
        redis_server.kill()
        status = agent.http.get("/api/status", params={"id": "anything"})
        assert status.status_code == 503 and status.json()["message"] == "StoreUnavailable"
        assert_store_outage_answers(agent)
        wait_outage_met(agent)
    wait_ended(agent)
    redis_server.start()  # empty: Redis here keeps nothing on disk
    assert_recovered(agent, finish(runs))
    log = agent.log()
    assert log.count("store.write_failed") == RUNS and log.count("store.write_recovered") <= RUNS, log
    assert "ERROR" not in log.replace("level=ERROR", ""), log


def assert_folder_intact(folder: Path) -> None:
    """No write left half a file; what is left is whole tasks (a record, then results once it succeeded) and
    the empty files the store keeps ready for its next writes."""
    leftovers = [path for path in folder.iterdir() if path.name.endswith(".tmp")]
    assert not [path.name for path in leftovers if not path.name.startswith(SPARE_PREFIX)], leftovers
    assert not [path.name for path in leftovers if path.stat().st_size], leftovers
    for path in folder.glob("*.json"):
        for line in path.read_bytes().splitlines():
            json.loads(line)


def test_task_folder_read_only_mid_run(agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("making a folder read-only for root needs chattr, which needs root")
    folder = tmp_path / "tasks"
    agent = agent_factory(TASK_STORE=f"file://{folder}", TASK_HEARTBEAT=HEARTBEAT)
    try:
        with agent.comfyui_held():
            runs = start_runs(agent)
            subprocess.run(["chattr", "+i", str(folder)], check=True)
            assert_store_outage_answers(agent)
            assert agent.http.get("/api/status", params={"id": "nothing"}).status_code == 404
            wait_outage_met(agent)
        wait_ended(agent)
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
    assert_recovered(agent, finish(runs))
    assert_folder_intact(folder)


def test_task_folder_full_mid_run(agent_factory: Callable[..., AgentProcess], tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a small full file system needs a tmpfs mount, which needs root")
    folder = tmp_path / "tasks"
    folder.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(folder)], check=True)
    try:
        agent = agent_factory(TASK_STORE=f"file://{folder}", TASK_HEARTBEAT=HEARTBEAT)
        with agent.comfyui_held():
            runs = start_runs(agent)
            filler = folder / "filler"
            with contextlib.suppress(OSError), open(filler, "wb") as handle:
                handle.write(b"\0" * 1024 * 1024)
            assert_store_outage_answers(agent)
            wait_outage_met(agent)
        wait_ended(agent)
        filler.unlink()
        assert_recovered(agent, finish(runs))
        assert_folder_intact(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)
