"""GET /api/status: the seed's shape, answered from the store."""

from __future__ import annotations

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient

from comfy_double.harness import held
from double_helpers import save_prompt
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]


async def test_status_by_every_id_form_after_the_run(agent: Client) -> None:
    run = await agent.post("/api/run", json=save_prompt(5), headers={"task-id": "done-1"})
    final = await run.json()
    for params, headers in (({"id": "done-1"}, {}), ({"task_id": "done-1"}, {}), ({}, {"task-id": "done-1"})):
        response = await agent.get("/api/status", params=params, headers=headers)
        assert response.status == 200
        assert response.headers["X-Task-Id"] == "done-1"
        assert response.headers["X-Task-Status"] == "succeeded"
        assert await response.json() == final


async def test_status_without_results_on_request(agent: Client) -> None:
    await agent.post("/api/run", json=save_prompt(6), headers={"task-id": "done-2"})
    body = await (await agent.get("/api/status", params={"id": "done-2", "results": "false"})).json()
    assert body["2"]["images"] and "results" not in body["2"]


async def test_status_while_running_shows_the_progress_so_far(agent: Client, double: str) -> None:
    async with held(double):  # node 1 waits at its start until the block ends, however slow this machine is
        run = asyncio.create_task(agent.post("/api/run", json=save_prompt(1), headers={"task-id": "live"}))

        async def node_1_running() -> bool:
            response = await agent.get("/api/status", params={"id": "live"})
            return response.headers.get("X-Task-Status") == "running" and (await response.json())["1"]["max"] == 1

        await until(node_1_running, EVENTUALLY, "node 1 running")
        response = await agent.get("/api/status", params={"id": "live"})
        body = await response.json()
        assert response.headers["X-Task-Status"] == "running"
        assert (body["1"]["max"], body["1"]["value"]) == (1, 0)
        assert (body["2"]["max"], body["2"]["value"]) == (0, 0)
        assert "results" not in body["2"]
    assert (await run).status == 200


async def test_failed_task_status_names_the_error(agent: Client) -> None:
    await agent.post("/api/run", json=save_prompt(1, fault="error"), headers={"task-id": "bad-1"})
    response = await agent.get("/api/status", params={"id": "bad-1"})
    assert response.status == 200
    assert response.headers["X-Task-Status"] == "failed"
    assert response.headers["X-Task-Error"] == "ExecutionError"


async def test_unknown_and_missing_ids(agent: Client) -> None:
    unknown = await agent.get("/api/status", params={"id": "never-ran"})
    assert unknown.status == 404 and (await unknown.json())["message"] == "TaskNotFound"
    missing = await agent.get("/api/status")
    assert missing.status == 400 and (await missing.json())["message"] == "RequestParamsError"
    bad = await agent.get("/api/status", params={"id": "../../etc/passwd"})
    assert bad.status == 400
