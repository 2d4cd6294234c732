"""ComfyUI SIGKILLed at random moments, 20 times: every run it takes down says so (how fast: the figure kept in
.artifacts/hardening.json), ComfyUI comes back each time and runs again, and no zombie or orphan is ever left."""

from __future__ import annotations

import os
import random
import signal
import statistics
import time
from collections.abc import Callable
from typing import Any

from agent_process import AgentProcess
from double_helpers import pixel, rgb, save_prompt
from hardening.conftest import record
from procs import children, group_members, state
from waiting import EVENTUALLY, wait_for

KILLS = 20


def wait_for_new_comfyui(agent: AgentProcess, old: int) -> int:
    agent.wait_ready()
    kids = wait_for(lambda: [kid for kid in children(agent.proc.pid) if kid != old], EVENTUALLY,
                    "ComfyUI to be restarted")
    return kids[0]


def wait_queued(agent: AgentProcess, count: int) -> None:
    agent.wait_comfyui(lambda info: info["prompts_queued"] >= count, f"{count} prompts queued in this ComfyUI")


def _kill_during_runs(agent: AgentProcess, rng: random.Random, round_: int) -> list[float]:
    """One round: three runs in flight, ComfyUI killed among them; how long each caught run took to hear of it."""
    comfyui = agent.comfyui_pid()
    queued = agent.comfyui("/__double__/info")["prompts_queued"]
    replies: list[dict[str, Any]] = []
    threads = []
    colors = [round_ * 10 + lane for lane in range(3)]
    for lane, color in enumerate(colors):
        thread, reply = agent.run_in_background(save_prompt(color, f"storm{lane}", delay=rng.uniform(0.2, 1.5)))
        threads.append(thread)
        replies.append(reply)
    wait_queued(agent, queued + 3)
    # The kill lands at a random moment of the runs on purpose; the 3 are in flight (waited for above), and
    # every check below holds wherever the kill falls: done before it (its own image), or ComfyUICrashed.
    time.sleep(rng.uniform(0.05, 1.0))
    killed_at = time.monotonic()
    os.kill(comfyui, signal.SIGKILL)
    for thread in threads:
        thread.join(EVENTUALLY)
    latencies = []
    for color, reply in zip(colors, replies, strict=True):
        response = reply["response"]
        if response.status_code == 200:
            assert pixel(response.json(), "2") == rgb(color), "a 200 without its run's own image"
            continue
        assert response.status_code == 502 and response.json()["message"] == "ComfyUICrashed", response.text
        latencies.append(reply["at"] - killed_at)
    replacement = wait_for_new_comfyui(agent, comfyui)
    assert state(comfyui) is None, f"round {round_}: the killed ComfyUI {comfyui} is a zombie or still there"
    assert agent.run(save_prompt(0x335577, "after")).status_code == 200
    assert agent.comfyui("/__double__/info")["prompts_received"] == 1, "a run was sent again after the kill"
    assert children(agent.proc.pid) == [replacement]
    return latencies


def test_twenty_random_kills(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory()
    rng = random.Random(11)
    latencies: list[float] = []
    groups: list[int] = []
    for round_ in range(KILLS):
        groups.append(os.getpgid(agent.comfyui_pid()))
        latencies += _kill_during_runs(agent, rng, round_)
    assert agent.http.get("/readyz").json()["restarts"] >= KILLS
    for group in groups:
        assert group_members(group) == [], f"process group {group} of a killed ComfyUI still has members"
    assert latencies, "no run was caught by a kill"
    record("crash_storm", kills=KILLS, affected_runs=len(latencies),
           crash_reported_seconds={"median": round(statistics.median(latencies), 3),
                                   "max": round(max(latencies), 3)})
