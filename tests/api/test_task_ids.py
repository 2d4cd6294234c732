"""What a task id means over time: taken while active, answered again once succeeded, free after a failure."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient

from double_helpers import double_info, save_prompt

Client = TestClient[web.Request, web.Application]


async def test_retried_delivery_of_a_succeeded_task_gets_the_same_answer_without_running(
        agent: Client, double: str) -> None:
    first = await agent.post("/api/run", json=save_prompt(0x224466, delay=0.3), headers={"task-id": "retry-1"})
    assert first.status == 200
    again = await agent.post("/api/run", json=save_prompt(0x224466, delay=0.3), headers={"task-id": "retry-1"})
    assert again.status == 200
    assert await again.json() == await first.json()
    assert (await double_info(double))["prompts_queued"] == 1


async def test_a_different_request_under_a_succeeded_id_is_refused(agent: Client) -> None:
    assert (await agent.post("/api/run", json=save_prompt(1), headers={"task-id": "used"})).status == 200
    other = await agent.post("/api/run", json=save_prompt(2), headers={"task-id": "used"})
    assert other.status == 409
    assert "different request" in (await other.json())["error"]


async def test_a_failed_task_id_runs_again(agent: Client, double: str) -> None:
    failed = await agent.post("/api/run", json=save_prompt(1, fault="error"), headers={"task-id": "flaky"})
    assert failed.status == 500
    retried = await agent.post("/api/run", json=save_prompt(1), headers={"task-id": "flaky"})
    assert retried.status == 200
    status = await agent.get("/api/tasks/flaky")
    assert (await status.json())["status"] == "succeeded"
