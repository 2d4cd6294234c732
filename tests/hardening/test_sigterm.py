"""SIGTERM in the middle of runs: the agent drains as /pre-stop does, then leaves no ComfyUI process behind."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable

from agent_process import AgentProcess
from double_helpers import save_prompt
from procs import group_members, state
from waiting import EVENTUALLY


def test_sigterm_drains_open_runs_and_stops_comfyui(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory(PRESTOP_GRACE="30", LOG_LEVEL="info")
    comfyui = agent.comfyui_pid()
    group = os.getpgid(comfyui)
    with agent.comfyui_held():  # the runs stay open until the late run has been refused, however slow this machine
        runs = [agent.run_in_background(save_prompt(0x010203 * (index + 1), f"term{index}")) for index in range(6)]
        agent.wait_comfyui(lambda info: info["prompts_queued"] == 6 and info["held"], "all 6 runs queued")
        agent.proc.send_signal(signal.SIGTERM)
        agent.wait_log("agent.stopping")
        late = agent.http.post("/api/run", json=save_prompt(1))
        assert late.status_code == 503 and "stopping" in late.json()["error"]
    for thread, _ in runs:
        thread.join(EVENTUALLY)
    assert [reply["response"].status_code for _, reply in runs] == [200] * 6
    assert agent.proc.wait(EVENTUALLY) == 0
    assert state(comfyui) is None
    assert group_members(group) == []
