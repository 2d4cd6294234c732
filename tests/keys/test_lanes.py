"""Each key in its lane: a task is its key's; another key reads, follows, cancels and lists nothing of it, on
the agent's API and on Comfy API v2 alike; a read-only key runs nothing."""

from __future__ import annotations

import pytest

from double_helpers import double_info, save_prompt
from keys.conftest import ADMIN, Client, bearer, make_key
from waiting import EVENTUALLY, until

pytestmark = pytest.mark.timeout(60)


async def test_another_keys_task_is_not_there(agent: Client) -> None:
    alice, bob = await make_key(agent, "alice"), await make_key(agent, "bob")
    ran = await agent.post("/api/run", json=save_prompt(1), headers=bearer(alice, **{"task-id": "alice-1"}))
    assert ran.status == 200, await ran.text()
    for path in ["/api/tasks/alice-1", "/api/status?id=alice-1", "/api/tasks/alice-1/events"]:
        assert (await agent.get(path, headers=bearer(alice))).status == 200, path
        theirs = await agent.get(path, headers=bearer(bob))
        assert theirs.status == 404 and (await theirs.json())["message"] == "TaskNotFound", path
        assert (await agent.get(path, headers=ADMIN)).status == 200, path  # the admin sees every task
    canceled = await agent.post("/api/tasks/alice-1/cancel", headers=bearer(bob))
    assert canceled.status == 404
    task = await (await agent.get("/api/tasks/alice-1", headers=ADMIN)).json()
    assert task["key"] == "alice" and task["status"] == "succeeded"
    reused = await agent.post("/api/run", json=save_prompt(1), headers=bearer(bob, **{"task-id": "alice-1"}))
    assert reused.status == 409 and (await reused.json())["message"] == "TaskConflict"  # never alice's result


async def test_a_poll_answered_from_memory_is_answered_for_its_reader_only(agent: Client) -> None:
    alice, bob = await make_key(agent, "alice"), await make_key(agent, "bob")
    await agent.post("/api/run", json=save_prompt(1), headers=bearer(alice, **{"task-id": "polled"}))
    assert (await agent.get("/api/status?id=polled", headers=bearer(alice))).status == 200
    assert (await agent.get("/api/status?id=polled", headers=bearer(bob))).status == 404  # right after: not kept


async def test_a_read_key_runs_nothing_and_a_run_key_cancels_its_own(agent: Client, double: str) -> None:
    reader = await make_key(agent, "reader", scopes=["read"])
    before = (await double_info(double))["prompts_queued"]
    for path, body in [("/api/run", save_prompt(1)), ("/api/v2/jobs", {"workflow": save_prompt(1)})]:
        refused = await agent.post(path, json=body, headers=bearer(reader))
        assert refused.status == 403, await refused.text()
    assert (await double_info(double))["prompts_queued"] == before
    runner = await make_key(agent, "runner", scopes=["run"])
    started = await agent.post("/api/run", json=save_prompt(2, delay=EVENTUALLY),
                               headers=bearer(runner, Prefer="respond-async", **{"task-id": "long"}))
    assert started.status == 202
    assert (await agent.post("/api/tasks/long/cancel", headers=bearer(reader))).status == 404
    stopped = await agent.post("/api/tasks/long/cancel", headers=bearer(runner))
    assert stopped.status in (200, 202)

    async def canceled() -> bool:
        task = await (await agent.get("/api/tasks/long", headers=bearer(runner))).json()
        return bool(task["status"] == "canceled")

    await until(canceled, EVENTUALLY, "the run key's own cancel")


async def test_v2_jobs_are_listed_and_read_in_their_lane(agent: Client) -> None:
    alice, bob = await make_key(agent, "alice"), await make_key(agent, "bob")
    made = await agent.post("/api/v2/jobs", json={"workflow": save_prompt(3)}, headers=bearer(alice))
    assert made.status == 201, await made.text()
    job_id = (await made.json())["id"]
    assert (await agent.get(f"/api/v2/jobs/{job_id}", headers=bearer(alice))).status == 200
    theirs = await agent.get(f"/api/v2/jobs/{job_id}", headers=bearer(bob))
    assert theirs.status == 404 and (await theirs.json())["error"]["code"] == "not_found"
    for path in [f"/api/v2/jobs/{job_id}/events", f"/api/v2/jobs/{job_id}/workflow"]:
        assert (await agent.get(path, headers=bearer(bob))).status == 404, path
    assert (await agent.post(f"/api/v2/jobs/{job_id}/cancel", headers=bearer(bob))).status == 404
    listed = await (await agent.get("/api/v2/jobs", headers=bearer(bob))).json()
    assert listed["jobs"] == []
    mine = await (await agent.get("/api/v2/jobs", headers=bearer(alice))).json()
    assert [job["id"] for job in mine["jobs"]] == [job_id]
