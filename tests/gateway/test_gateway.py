"""The gateway as deployed: `comfyui-agent gateway` in front of the stand-in for FC's asynchronous front
(tests/fc_front.py), which delivers to two worker agents, each with its ComfyUI (the double), all sharing one
task store: Redis, then a folder (a NAS)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from agent.stores import open_store
from agent.workflows.catalog import SHARED_NAME
from agent_harness import serving
from agent_process import AgentProcess, double_settings, free_port
from double_helpers import double_info, save_prompt
from fc_front import FcFront
from sse_client import read_events
from stores.conftest import shared_store
from waiting import EVENTUALLY, until

TOKEN = "gateway-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
BACKGROUND = {**AUTH, "Prefer": "respond-async"}
FINISHED = {"succeeded", "failed", "canceled"}
pytestmark = pytest.mark.timeout(180)


class Deployment:
    def __init__(self, tmp: Path, store: str, front: FcFront, front_url: str,
                 session: aiohttp.ClientSession) -> None:
        self.tmp, self.store, self.front, self.front_url, self.session = tmp, store, front, front_url, session
        self.workers: list[AgentProcess] = []
        self.gateways: list[AgentProcess] = []
        self.started = 0

    def start_gateway(self, **env: str) -> str:
        workdir = self.tmp / f"gateway-{len(self.gateways)}"
        workdir.mkdir()
        gateway = AgentProcess(workdir, {"AGENT_MODE": "gateway", "WORKER_URL": self.front_url,
                                         "TASK_STORE": self.store, "AGENT_TOKEN": TOKEN, "LOG_LEVEL": "warning",
                                         **env})
        gateway.wait_ready(path="/openapi.json")  # served by the application (the port answers /healthz before it)
        self.gateways.append(gateway)
        return gateway.url

    @property
    def url(self) -> str:
        return self.gateways[0].url

    async def start_workers(self, count: int = 2, env: dict[str, str] | None = None) -> None:
        """New workers (new ports, as new FC instances), and the front delivers to them from now on."""
        fresh = []
        for _ in range(count):
            workdir = self.tmp / f"worker-{self.started}"
            self.started += 1
            workdir.mkdir()
            fresh.append(AgentProcess(workdir, {**double_settings(workdir), "TASK_STORE": self.store,
                                                "AGENT_TOKEN": TOKEN, "TASK_HEARTBEAT": "0.5", "LOG_LEVEL": "warning",
                                                **(env or {})}))
        self.workers += fresh  # stopped at the end even when one never gets ready
        await asyncio.gather(*(asyncio.to_thread(worker.wait_ready) for worker in fresh))
        self.front.set_workers([worker.url for worker in fresh])

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    async def prompts_run(self) -> int:
        """Prompts the workers' ComfyUIs took, all together."""
        infos = [await double_info(worker.comfyui_url) for worker in self.workers if worker.comfyui_url]
        return sum(info["prompts_queued"] for info in infos)

    async def submit(self, task_id: str, prompt: dict[str, Any], url: str | None = None) -> None:
        async with self.session.post(f"{url or self.url}/api/run", json=prompt,
                                     headers={**BACKGROUND, "task-id": task_id}) as reply:
            assert reply.status == 202, await reply.text()
            assert reply.headers["Location"] == f"/api/tasks/{task_id}"

    async def task(self, task_id: str, url: str | None = None, **params: str) -> dict[str, Any]:
        async with self.session.get(f"{url or self.url}/api/tasks/{task_id}", params=params, headers=AUTH) as reply:
            assert reply.status == 200, await reply.text()
            body: dict[str, Any] = await reply.json()
            return body

    async def ended(self, task_id: str, timeout: float = EVENTUALLY, url: str | None = None) -> dict[str, Any]:
        async def finished() -> dict[str, Any] | None:
            task = await self.task(task_id, url)
            return task if task["status"] in FINISHED else None

        return await until(finished, timeout, f"{task_id} to end")


@pytest.fixture(params=["redis", "file"])
async def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Deployment]:
    store = await shared_store(request.param, tmp_path)
    front = FcFront([], max_retries=3, retry_base=0.2)
    async with serving(front.app()) as front_url, aiohttp.ClientSession() as session:
        deployed = Deployment(tmp_path, store, front, front_url, session)
        try:
            await asyncio.to_thread(deployed.start_gateway)
            yield deployed
        finally:
            deployed.stop_workers()
            for gateway in deployed.gateways:
                gateway.stop()


async def test_runs_handed_to_the_gateway_complete_on_the_workers(deployment: Deployment) -> None:
    await deployment.start_workers()
    ids = [f"gw-{index}" for index in range(4)]
    for index, task_id in enumerate(ids):
        await deployment.submit(task_id, save_prompt(0x102030 * (index + 1), f"gw{index}", delay=0.3))
    ended = [await deployment.ended(task_id) for task_id in ids]
    assert [task["status"] for task in ended] == ["succeeded"] * 4, ended
    delivered_to = {attempt.worker for task_id in ids for attempt in deployment.front.invocation(task_id).attempts}
    assert delivered_to == {worker.url for worker in deployment.workers}  # both workers took runs
    with_results = await deployment.task(ids[0], results="true")
    assert base64.b64decode(with_results["progress"]["2"]["results"][0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert await deployment.prompts_run() == 4
    invocation = deployment.front.invocation(ids[0])
    assert invocation.headers["Authorization"] == f"Bearer {TOKEN}"
    assert invocation.headers["X-Fc-Invocation-Type"] == "Async"


async def test_polls_streams_and_the_page_are_served_while_the_workers_are_stopped(deployment: Deployment) -> None:
    await deployment.start_workers()
    await until(lambda: _published(deployment.store), EVENTUALLY, "a worker to publish ComfyUI's model lists")
    deployment.stop_workers()
    deployment.front.hold()  # FC keeps the invocation while no instance is up
    await deployment.submit("gw-cold", save_prompt(0x445566, "cold"))
    session, url = deployment.session, deployment.url
    async with session.get(f"{url}/api/status", params={"id": "gw-cold"}, headers=AUTH) as reply:
        assert reply.status == 200 and reply.headers["X-Task-Status"] == "queued"
    assert (await deployment.task("gw-cold"))["status"] == "queued"
    async with session.get(f"{url}/app/") as reply:
        assert reply.status == 200 and "text/html" in reply.headers["Content-Type"]
    async with session.get(f"{url}/api/workflows/txt2img", headers=AUTH) as reply:
        described = await reply.json()
        assert described["parameters"]["properties"]["checkpoint"]["enum"] == ["random-sd15.safetensors"]
    for path in ("/openapi.json", "/docs", "/healthz", "/metrics"):
        async with session.get(url + path, headers=AUTH) as reply:
            assert reply.status == 200, path
    async with session.get(f"{url}/api/tasks/gw-cold/events", headers=AUTH) as stream:
        assert stream.status == 200
        first = await read_events(stream, limit=1)
        assert (first[0].event, first[0].data) == ("status", {"status": "queued"})
        await deployment.start_workers(1)
        deployment.front.release()
        rest = await read_events(stream)
    assert rest[-1].event == "end" and rest[-1].data["status"] == "succeeded"
    assert (await deployment.ended("gw-cold"))["status"] == "succeeded"


async def _published(store_url: str) -> bool:
    stores = open_store(store_url, 60, 30)
    try:
        return await stores.shared.get_shared(SHARED_NAME) is not None
    finally:
        await stores.close()


async def test_a_task_delivered_twice_runs_once(deployment: Deployment) -> None:
    await deployment.start_workers()
    deployment.front.duplicate = True
    await deployment.submit("gw-twice", save_prompt(0x778899, "twice"))
    invocation = await deployment.front.wait_settled("gw-twice", EVENTUALLY)
    assert len(invocation.attempts) == 2 and all(attempt.handled for attempt in invocation.attempts)
    assert (await deployment.ended("gw-twice"))["status"] == "succeeded"
    assert await deployment.prompts_run() == 1


async def test_a_task_never_delivered_ends_failed_after_its_age(deployment: Deployment) -> None:
    impatient = await asyncio.to_thread(deployment.start_gateway, ASYNC_MAX_EVENT_AGE="2")
    deployment.front.drop = True
    submitted = time.monotonic()
    await deployment.submit("gw-lost", save_prompt(0x111111, "lost"), url=impatient)
    assert (await deployment.task("gw-lost", impatient))["status"] == "queued"
    ended = await deployment.ended("gw-lost", url=impatient)
    assert time.monotonic() - submitted >= 2  # a lower bound: never before its age, however fast the machine
    assert ended["status"] == "failed" and ended["error"]["message"] == "NotDelivered", ended
    assert (await deployment.task("gw-lost"))["error"]["message"] == "NotDelivered"  # every instance says so
    async with deployment.session.get(f"{impatient}/api/tasks/gw-lost/events", headers=AUTH) as stream:
        events = await read_events(stream)
    assert events[-1].event == "end" and events[-1].data["error"]["message"] == "NotDelivered"


async def test_a_run_canceled_before_its_delivery_never_runs(deployment: Deployment) -> None:
    await deployment.start_workers(1)
    deployment.front.hold()
    await deployment.submit("gw-cancel", save_prompt(0x222222, "cancel"))
    async with deployment.session.post(f"{deployment.url}/api/tasks/gw-cancel/cancel", headers=AUTH) as reply:
        body = await reply.json()
        assert reply.status == 200 and body["status"] == "canceled", body
    deployment.front.release()
    invocation = await deployment.front.wait_settled("gw-cancel", EVENTUALLY)
    assert [attempt.status for attempt in invocation.attempts] == [409]  # answered from the store: Canceled
    assert (await deployment.task("gw-cancel"))["status"] == "canceled"
    assert await deployment.prompts_run() == 0


async def test_a_run_canceled_while_a_worker_runs_it_stops_there(deployment: Deployment) -> None:
    await deployment.start_workers(1)
    await deployment.submit("gw-stop", save_prompt(0x333333, "stop", delay=10 * EVENTUALLY))  # only its cancel ends it

    async def running() -> bool:
        return bool((await deployment.task("gw-stop"))["status"] == "running")

    await until(running, EVENTUALLY, "the run to start on the worker")
    async with deployment.session.post(f"{deployment.url}/api/tasks/gw-stop/cancel", headers=AUTH) as reply:
        body = await reply.json()
        assert reply.status == 200 and body["status"] == "canceled", body


async def test_held_and_streamed_runs_through_the_gateway(deployment: Deployment) -> None:
    await deployment.start_workers(1)
    async with deployment.session.post(f"{deployment.url}/api/run", json=save_prompt(0x444444, "held"),
                                       headers={**AUTH, "task-id": "gw-held"}) as reply:
        body = await reply.json()
        assert reply.status == 200, body
        assert reply.headers["X-Task-Id"] == "gw-held" and body["2"]["results"]
    assert not deployment.front.invocations or "gw-held" not in deployment.front.by_task_id  # held: not queued
    async with deployment.session.post(f"{deployment.url}/api/run", json=save_prompt(0x555555, "streamed"),
                                       headers={**AUTH, "task-id": "gw-sse", "Accept": "text/event-stream"}) as reply:
        events = await read_events(reply)
    assert events[0].data == {"status": "queued"}
    assert events[-1].event == "end" and events[-1].data["status"] == "succeeded"
    assert "gw-sse" in deployment.front.by_task_id  # handed off; the stream came from the store


async def test_a_workflow_runs_through_the_gateway_with_its_parameters_as_used(deployment: Deployment) -> None:
    await deployment.start_workers(1)
    await until(lambda: _published(deployment.store), EVENTUALLY, "a worker to publish ComfyUI's model lists")
    params: dict[str, Any] = {"prompt": "a lighthouse", "steps": 2, "width": 64, "height": 64,
                              "checkpoint": "nowhere.safetensors"}
    async with deployment.session.post(f"{deployment.url}/api/workflows/txt2img/run", json={"params": params},
                                       headers={**BACKGROUND, "task-id": "gw-wf-bad"}) as reply:
        error = await reply.json()  # not a model this ComfyUI has: told by the gateway, from the published lists
        assert reply.status == 400 and error["message"] == "RequestParamsError", error
    params["checkpoint"] = "random-sd15.safetensors"
    async with deployment.session.post(f"{deployment.url}/api/workflows/txt2img/run", json={"params": params},
                                       headers={**BACKGROUND, "task-id": "gw-wf"}) as reply:
        assert reply.status == 202, await reply.text()
    forwarded = json.loads(deployment.front.invocation("gw-wf").body)
    assert forwarded["params"] == {**params, "seed": forwarded["params"]["seed"]}  # the seed drawn at the gateway
    ended = await deployment.ended("gw-wf")
    assert ended["status"] == "succeeded", ended
    assert ended["params"]["seed"] == forwarded["params"]["seed"] and ended["params"]["cfg"] == 8


async def test_a_delivery_the_worker_refuses_fails_the_task_at_once(deployment: Deployment) -> None:
    await deployment.start_workers(1)
    body = {"prompt": save_prompt(0x666666, "url"), "options": {"output": {"delivery": "url"}}}  # no OUTPUT_STORE
    async with deployment.session.post(f"{deployment.url}/api/run", json=body,
                                       headers={**BACKGROUND, "task-id": "gw-refused"}) as reply:
        assert reply.status == 202, await reply.text()
    invocation = await deployment.front.wait_settled("gw-refused", EVENTUALLY)
    assert [attempt.status for attempt in invocation.attempts] == [400]
    task = await deployment.task("gw-refused")
    assert task["status"] == "failed" and task["error"]["message"] == "RequestParamsError", task


def _loading(image: str) -> bytes:
    return json.dumps({"1": {"class_type": "LoadImage", "inputs": {"image": image}}}).encode()


@pytest.mark.parametrize(("body", "kind"), [
    (b"{not json", "RequestParamsError"),
    (json.dumps({"prompt": {"1": {"class_type": "EmptyImage"}}, "options": {"timeout": -1}}).encode(),
     "RequestParamsError"),
    (_loading("data:image/png;base64,%%%"), "InputImageError"),
    (_loading("data:image/png;base64," + base64.b64encode(b"not an image" * 9).decode()), "InputImageError"),
    (_loading("ftp://example.com/a.png"), "InputImageError"),
    (_loading("oss://bucket-only"), "InputImageError"),
])
async def test_bad_runs_are_refused_at_the_gateway_and_nothing_reaches_fc(deployment: Deployment, body: bytes,
                                                                       kind: str) -> None:
    async with deployment.session.post(f"{deployment.url}/api/run", data=body,
                                       headers={**BACKGROUND, "Content-Type": "application/json"}) as reply:
        error = await reply.json()
        assert reply.status == 400 and error["message"] == kind, error
    assert not deployment.front.invocations


async def test_a_background_run_over_fcs_async_limit_is_refused_with_the_way_out(deployment: Deployment) -> None:
    big = "data:image/png;base64," + base64.b64encode(_png(200 * 1024)).decode()
    prompt = {"1": {"class_type": "LoadImage", "inputs": {"image": big}},
              "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "big"}}}
    async with deployment.session.post(f"{deployment.url}/api/run", json=prompt, headers=BACKGROUND) as reply:
        error = await reply.json()
        assert reply.status == 413 and error["message"] == "RequestTooLarge", error
        assert "by URL" in error["error"]
    assert not deployment.front.invocations


async def test_a_worker_function_that_refuses_leaves_the_task_failed_with_retry_after(deployment: Deployment) -> None:
    async with deployment.session.post(f"{deployment.url}/api/run", json=save_prompt(1, "refused"),
                                       headers={**BACKGROUND, "task-id": "gw-dup"}) as reply:
        assert reply.status == 202
    async with deployment.session.post(f"{deployment.url}/api/tasks/gw-dup/cancel", headers=AUTH) as reply:
        assert (await reply.json())["status"] == "canceled"
    async with deployment.session.post(f"{deployment.url}/api/run", json=save_prompt(1, "refused"),
                                       headers={**BACKGROUND, "task-id": "gw-dup"}) as reply:
        error = await reply.json()
        assert reply.status == 409 and error["message"] == "TaskConflict", error
    assert (await deployment.task("gw-dup"))["error"]["message"] == "TaskConflict"
    down = await asyncio.to_thread(deployment.start_gateway, WORKER_URL=f"http://127.0.0.1:{free_port()}")
    async with deployment.session.post(f"{down}/api/run", json=save_prompt(1, "down"),
                                       headers={**BACKGROUND, "task-id": "gw-down"}) as reply:
        error = await reply.json()
        assert reply.status == 503 and error["message"] == "WorkerUnavailable", error
        assert int(reply.headers["Retry-After"]) > 0
    assert (await deployment.task("gw-down"))["status"] == "failed"


def _png(size: int) -> bytes:
    """A PNG signature and noise: a loader input of `size` bytes that reads as an image."""
    return b"\x89PNG\r\n\x1a\n" + bytes(size)
