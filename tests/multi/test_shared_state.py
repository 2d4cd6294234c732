"""Three agents, each with its own ComfyUI (the double), sharing one task store (a folder, then Redis), behind
a round-robin proxy: what FC does with async invocations and status polls, and what it does when it kills one."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_harness import serving
from agent_process import AgentProcess, double_settings, double_temp
from double_helpers import save_prompt, with_preview
from round_robin import RoundRobin
from stores.conftest import shared_store
from waiting import EVENTUALLY, until

HEARTBEAT = 0.5  # stale after 3 s
STATUS_RANK = {"queued": 0, "running": 1, "succeeded": 2, "failed": 2, "canceled": 2}


class Cluster:
    def __init__(self, agents: list[AgentProcess], url: str, session: aiohttp.ClientSession) -> None:
        self.agents = agents
        self.url = url
        self.session = session

    async def start(self, task_id: str, prompt: dict[str, Any]) -> int:
        async with self.session.post(f"{self.url}/api/run", json=prompt,
                                     headers={"Prefer": "respond-async", "task-id": task_id}) as response:
            assert response.status == 202, await response.text()
            return int(response.headers["X-Backend"])

    async def task(self, task_id: str, **params: str) -> dict[str, Any]:
        async with self.session.get(f"{self.url}/api/tasks/{task_id}", params=params) as response:
            assert response.status == 200, await response.text()
            body: dict[str, Any] = await response.json()
            return body

    async def wait_running(self, task_id: str, timeout: float = EVENTUALLY) -> None:
        async def running() -> bool:
            return bool((await self.task(task_id))["status"] == "running")

        await until(running, timeout, f"{task_id} to be running")

    async def follow(self, task_id: str, timeout: float = EVENTUALLY) -> list[dict[str, Any]]:
        """Every state pollers saw, polling through the proxy (so across all instances), up to the end."""
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen.append(await self.task(task_id))
            if STATUS_RANK[seen[-1]["status"]] == 2:
                return seen
            await asyncio.sleep(0.05)
        raise AssertionError(f"{task_id} never ended: {seen[-1]}")


def done_fraction(node: dict[str, Any]) -> float:
    return node["value"] / node["max"] if node["max"] else 0.0


def assert_monotonic(states: list[dict[str, Any]]) -> None:
    for before, after in itertools.pairwise(states):
        assert STATUS_RANK[after["status"]] >= STATUS_RANK[before["status"]], (before["status"], after["status"])
        for node, state in after["progress"].items():
            assert done_fraction(state) >= done_fraction(before["progress"][node]), (node, before, after)


@pytest.fixture(params=["file", "redis"])
async def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Cluster]:
    store = await shared_store(request.param, tmp_path)
    agents = []
    for index in range(3):
        workdir = tmp_path / f"instance-{index}"
        workdir.mkdir()
        agents.append(AgentProcess(workdir, {**double_settings(workdir), "TASK_STORE": store,
                                             "TASK_HEARTBEAT": str(HEARTBEAT)}))
    try:
        await asyncio.gather(*(asyncio.to_thread(agent.wait_ready) for agent in agents))
        proxy = RoundRobin([agent.url for agent in agents])
        async with serving(proxy.app()) as url, aiohttp.ClientSession() as session:
            yield Cluster(agents, url, session)
    finally:
        for agent in agents:
            agent.stop()


def stepped(color: int, prefix: str, seconds: float) -> dict[str, Any]:
    prompt = save_prompt(color, prefix, delay=seconds)
    prompt["1"]["_meta"]["double"]["progress"] = 10
    return prompt


async def test_async_runs_are_polled_from_any_instance_with_monotonic_progress(cluster: Cluster) -> None:
    ids = [f"multi-{index}" for index in range(6)]
    owners = [await cluster.start(task_id, stepped(0x101010 * (index + 1), f"m{index}", 1.0))
              for index, task_id in enumerate(ids)]
    assert sorted(set(owners)) == [0, 1, 2]
    histories = await asyncio.gather(*(cluster.follow(task_id) for task_id in ids))
    for history in histories:
        assert_monotonic(history)
        assert {state["status"] for state in history} >= {"running", "succeeded"}
        assert history[-1]["status"] == "succeeded"
        assert history[-1]["outputs"]["2"]["images"]
    final = await cluster.task(ids[0], results="true")
    assert final["progress"]["2"]["results"][0]


async def test_cancel_through_the_proxy_stops_the_right_run(cluster: Cluster) -> None:
    victim_owner = await cluster.start("victim", save_prompt(1, "victim", delay=10 * EVENTUALLY))  # ended by its cancel
    bystander_owner = await cluster.start("bystander", save_prompt(2, "bystander", delay=2.0))
    assert victim_owner != bystander_owner
    await cluster.wait_running("victim")
    async with cluster.session.post(f"{cluster.url}/api/tasks/victim/cancel") as response:
        body = await response.json()
        assert response.status == 200 and body["status"] == "canceled", body
    assert (await cluster.follow("bystander"))[-1]["status"] == "succeeded"
    assert (await cluster.task("victim"))["status"] == "canceled"


async def test_an_instance_stopping_leaves_the_previews_of_the_others(cluster: Cluster) -> None:
    """Each ComfyUI empties its temp folder as it starts and stops: never one the others use."""
    first = cluster.agents[0]
    async with cluster.session.post(f"{first.url}/api/run", json=with_preview(save_prompt(4, "kept"))) as response:
        assert response.status == 200, await response.text()
        preview = (await response.json())["3"]["images"][0]
    kept = double_temp(first.log_path.parent) / "temp" / preview["subfolder"] / preview["filename"]
    assert kept.is_file()
    assert cluster.agents[1].stop() == 0  # its ComfyUI stopped: its own temp folder emptied
    assert kept.is_file()


async def test_killed_instance_turns_its_task_into_failed_for_every_poller(cluster: Cluster) -> None:
    owner = await cluster.start("orphan", save_prompt(3, "orphan", delay=10 * EVENTUALLY))  # ended by the kill
    await cluster.wait_running("orphan")
    cluster.agents[owner].stop(signal.SIGKILL)
    history = await cluster.follow("orphan")
    assert history[-1]["status"] == "failed"
    assert history[-1]["error"]["message"] == "InstanceLost"
    survivors = [index for index in range(3) if index != owner]
    for index in survivors:
        async with cluster.session.get(f"{cluster.agents[index].url}/api/tasks/orphan") as response:
            assert (await response.json())["status"] == "failed"
