"""Keys across a deployment: two worker agents and a gateway (handing runs to them through the stand-in for FC's
asynchronous front) share one store, Redis and then a folder. A key's limits hold across all three, a revocation
made on one is seen by all, a task is in its key's lane everywhere, and the usage read at the gateway sums the
tasks' own timings, wherever they ran."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent_harness import serving
from agent_process import AgentProcess, double_settings
from double_helpers import save_prompt
from fc_front import FcFront
from stores.conftest import shared_store
from waiting import EVENTUALLY, until

TOKEN = "deployment-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
COMMON = {"TASK_STORE": "", "AGENT_TOKEN": TOKEN, "KEY_CACHE_SECONDS": "0.5", "LOG_LEVEL": "warning"}
pytestmark = pytest.mark.timeout(240)


def bearer(secret: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}", **more}


@dataclass
class Deployment:
    workers: list[AgentProcess]
    gateway: AgentProcess
    session: aiohttp.ClientSession

    @property
    def urls(self) -> list[str]:
        """Every way in: the gateway and each worker."""
        return [self.gateway.url, *(worker.url for worker in self.workers)]

    async def make_key(self, name: str, **limits: Any) -> str:
        async with self.session.post(f"{self.gateway.url}/api/keys", json={"name": name, "limits": limits},
                                     headers=ADMIN) as reply:
            assert reply.status == 201, await reply.text()
            secret: str = (await reply.json())["key"]
            return secret

    async def status(self, method: str, url: str, headers: dict[str, str], **kwargs: Any) -> tuple[int, Any]:
        async with self.session.request(method, url, headers=headers, **kwargs) as reply:
            return reply.status, await reply.json()

    async def ended(self, url: str, task_id: str, headers: dict[str, str]) -> dict[str, Any]:
        async def finished() -> dict[str, Any] | None:
            status, task = await self.status("GET", f"{url}/api/tasks/{task_id}", headers)
            assert status == 200, task
            return task if task["status"] in ("succeeded", "failed", "canceled") else None

        return await until(finished, EVENTUALLY, f"{task_id} to end")


@pytest.fixture(params=["redis", "file"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    store = await shared_store(request.param, tmp_path)
    env = {**COMMON, "TASK_STORE": store}
    front = FcFront([], max_retries=3, retry_base=0.2)
    workers: list[AgentProcess] = []
    gateway: AgentProcess | None = None
    async with serving(front.app()) as front_url, aiohttp.ClientSession() as session:
        try:
            for index in range(2):
                workdir = tmp_path / f"worker-{index}"
                workdir.mkdir()
                workers.append(AgentProcess(workdir, {**double_settings(workdir), **env}))
            (tmp_path / "gateway").mkdir()
            gateway = AgentProcess(tmp_path / "gateway", {**env, "AGENT_MODE": "gateway", "WORKER_URL": front_url})
            await asyncio.gather(*(asyncio.to_thread(worker.wait_ready) for worker in workers),
                                 asyncio.to_thread(gateway.wait_ready, path="/openapi.json"))
            front.set_workers([worker.url for worker in workers])
            yield Deployment(workers, gateway, session)
        finally:
            for process in [*workers, *([gateway] if gateway else [])]:
                process.stop()


async def test_runs_at_once_hold_across_the_instances_and_the_gateway(deployment: Deployment) -> None:
    secret = await deployment.make_key("burst", concurrent_runs=4)
    ways = itertools.cycle(deployment.urls)
    submitted = [(next(ways), f"burst-{n}") for n in range(12)]
    replies = await asyncio.gather(*(deployment.status(
        "POST", f"{url}/api/run", bearer(secret, Prefer="respond-async", **{"task-id": task_id}),
        json=save_prompt(n, delay=10 * EVENTUALLY)) for n, (url, task_id) in enumerate(submitted)))  # ended by cancel
    statuses = [status for status, _ in replies]
    assert sorted(statuses) == [202] * 4 + [429] * 8, replies
    assert {body["limit"] for status, body in replies if status == 429} == {"concurrent_runs"}
    taken = [task_id for (_, task_id), status in zip(submitted, statuses, strict=True) if status == 202]
    status, _ = await deployment.status("POST", f"{deployment.workers[0].url}/api/run", bearer(secret),
                                        json=save_prompt(1))
    assert status == 429  # still full, asked at a worker
    for task_id in taken:  # canceled from the gateway, wherever they run
        status, body = await deployment.status("POST", f"{deployment.gateway.url}/api/tasks/{task_id}/cancel",
                                               bearer(secret))
        assert status in (200, 202), body
    for task_id in taken:
        assert (await deployment.ended(deployment.gateway.url, task_id, bearer(secret)))["status"] == "canceled"
    status, body = await deployment.status("POST", f"{deployment.workers[1].url}/api/run", bearer(secret),
                                           json=save_prompt(2))
    assert status == 200, body  # the places came back as the runs ended


async def test_requests_a_minute_hold_across_the_instances(deployment: Deployment) -> None:
    secret = await deployment.make_key("chatty", requests_per_minute=5)
    ways = itertools.cycle(deployment.urls)
    statuses = [status for status, _ in await asyncio.gather(*(
        deployment.status("GET", f"{next(ways)}/api/me", bearer(secret)) for _ in range(12)))]
    assert sorted(statuses) == [200] * 5 + [429] * 7


async def test_a_revocation_is_seen_by_every_instance(deployment: Deployment) -> None:
    secret = await deployment.make_key("leaving")
    for url in deployment.urls:
        assert (await deployment.status("GET", f"{url}/api/me", bearer(secret)))[0] == 200
    status, _ = await deployment.status("DELETE", f"{deployment.workers[0].url}/api/keys/leaving", ADMIN)
    assert status == 200

    async def refused_everywhere() -> bool:
        statuses = [(await deployment.status("GET", f"{url}/api/me", bearer(secret)))[0] for url in deployment.urls]
        return statuses == [401] * len(statuses)

    await until(refused_everywhere, EVENTUALLY, "every instance to refuse the revoked key")


async def test_lanes_and_usage_across_the_deployment(deployment: Deployment) -> None:
    alice, bob = await deployment.make_key("alice"), await deployment.make_key("bob")
    ran = []
    for n, url in enumerate(deployment.urls):  # handed off at the gateway, run at each worker
        task_id = f"alice-{n}"
        status, body = await deployment.status("POST", f"{url}/api/run", bearer(
            alice, Prefer="respond-async", **{"task-id": task_id}), json=save_prompt(n, delay=0.1))
        assert status == 202, body
        ran.append(await deployment.ended(deployment.gateway.url, task_id, bearer(alice)))
    assert {task["status"] for task in ran} == {"succeeded"} and {task["key"] for task in ran} == {"alice"}
    for url in deployment.urls:
        status, body = await deployment.status("GET", f"{url}/api/tasks/alice-0", bearer(bob))
        assert status == 404 and body["message"] == "TaskNotFound"
    status, report = await deployment.status("GET", f"{deployment.gateway.url}/api/usage?key=alice", ADMIN)
    assert status == 200, report
    [row] = report["rows"]
    assert row["key"] == "alice" and row["tasks"] == 3
    assert row["gpu_seconds"] == pytest.approx(sum(task["timings"]["execution"] for task in ran), abs=1e-3)
    assert row["queue_seconds"] == pytest.approx(sum(task["timings"]["queue"] for task in ran), abs=1e-3)
    status, mine = await deployment.status("GET", f"{deployment.workers[1].url}/api/usage", bearer(bob))
    assert status == 200 and mine["rows"] == []
