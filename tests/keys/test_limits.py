"""A key's limits on one agent: requests a minute, runs at once, GPU seconds a day; each over-limit answer a 429
naming the limit, with Retry-After, and nothing run. (Across instances: test_shared.py.)"""

from __future__ import annotations

import asyncio

import pytest

from double_helpers import double_info, save_prompt
from keys.conftest import Client, bearer, make_key
from waiting import EVENTUALLY, until

pytestmark = pytest.mark.timeout(90)


async def _refusal(response_status: int, body: dict[str, object], limit: str) -> None:
    assert response_status == 429, body
    assert body["message"] == "LimitExceeded" and body["limit"] == limit, body


async def test_requests_a_minute(agent: Client) -> None:
    secret = await make_key(agent, "chatty", requests_per_minute=3)
    statuses = [(await agent.get("/api/me", headers=bearer(secret))).status for _ in range(3)]
    assert statuses == [200] * 3
    over = await agent.get("/api/me", headers=bearer(secret))
    await _refusal(over.status, await over.json(), "requests_per_minute")
    assert 1 <= int(over.headers["Retry-After"]) <= 20  # a token comes back every 20 s
    other = await make_key(agent, "quiet", requests_per_minute=3)
    assert (await agent.get("/api/me", headers=bearer(other))).status == 200  # each key its own minute


async def test_runs_at_once_then_room_again(agent: Client, double: str) -> None:
    secret = await make_key(agent, "busy", concurrent_runs=2)
    background = bearer(secret, Prefer="respond-async")
    answers = await asyncio.gather(*(agent.post("/api/run", json=save_prompt(n, delay=10 * EVENTUALLY), headers={
        **background, "task-id": f"busy-{n}"}) for n in range(5)))  # ended by their cancel
    assert sorted(answer.status for answer in answers) == [202, 202, 429, 429, 429]
    refused = next(answer for answer in answers if answer.status == 429)
    await _refusal(refused.status, await refused.json(), "concurrent_runs")
    assert refused.headers["Retry-After"] == "1"
    taken = [f"busy-{n}" for n, answer in enumerate(answers) if answer.status == 202]
    v2 = await agent.post("/api/v2/jobs", json={"workflow": save_prompt(8)}, headers=bearer(secret))
    assert v2.status == 429 and (await v2.json())["error"]["code"] == "concurrency_limit_exceeded"  # comfy-sdk's
    for refused_id in {f"busy-{n}" for n in range(5)} - set(taken):  # nothing recorded for a refusal
        assert (await agent.get(f"/api/tasks/{refused_id}", headers=bearer(secret))).status == 404
    for task_id in taken:
        assert (await agent.post(f"/api/tasks/{task_id}/cancel", headers=bearer(secret))).status in (200, 202)

    async def ended() -> bool:
        tasks = [await (await agent.get(f"/api/tasks/{task_id}", headers=bearer(secret))).json() for task_id in taken]
        return all(task["status"] == "canceled" for task in tasks)

    await until(ended, EVENTUALLY, "the two runs to end")
    again = await agent.post("/api/run", json=save_prompt(9), headers=bearer(secret))
    assert again.status == 200, await again.text()  # their places were given back as they ended
    assert (await double_info(double))["prompts_queued"] == 3
    assert (await (await agent.get("/api/v2/jobs", headers=bearer(secret))).json())["jobs"] == []  # none made


async def test_gpu_seconds_a_day(agent: Client, double: str) -> None:
    secret = await make_key(agent, "thrifty", gpu_seconds_per_day=0.000001)
    assert (await agent.post("/api/run", json=save_prompt(1), headers=bearer(secret))).status == 200
    over = await agent.post("/api/run", json=save_prompt(2), headers=bearer(secret))
    await _refusal(over.status, await over.json(), "gpu_seconds_per_day")
    assert 1 <= int(over.headers["Retry-After"]) <= 86400  # the next UTC day
    v2 = await agent.post("/api/v2/jobs", json={"workflow": save_prompt(3)}, headers=bearer(secret))
    assert v2.status == 429 and (await v2.json())["error"]["details"]["limit"] == "gpu_seconds_per_day"
    assert (await v2.json())["error"]["code"] == "rate_limited"  # comfy-sdk's RateLimited: a window to roll
    assert (await double_info(double))["prompts_queued"] == 1


async def test_a_quota_used_up_in_the_middle_of_a_burst(agent: Client, double: str) -> None:
    """Runs one after another until the day's GPU seconds are gone: each admitted while the ledger was under the
    quota, the first refused once it was not, and nothing run after it."""
    quota = 0.5
    secret = await make_key(agent, "burst", gpu_seconds_per_day=quota)
    used, ran = 0.0, 0
    for serial in range(12):
        reply = await agent.post("/api/run", json=save_prompt(serial, delay=0.15),
                                 headers=bearer(secret, **{"task-id": f"burst-{serial}"}))
        if reply.status == 429:
            await _refusal(reply.status, await reply.json(), "gpu_seconds_per_day")
            break
        assert reply.status == 200 and used < quota, (serial, used)
        task = await (await agent.get(f"/api/tasks/burst-{serial}", headers=bearer(secret))).json()
        used += task["timings"]["execution"]
        ran += 1
    else:
        raise AssertionError(f"never refused: {used} GPU seconds used of {quota}")
    assert used >= quota and ran >= 1
    prompts = (await double_info(double))["prompts_queued"]
    assert (await agent.post("/api/run", json=save_prompt(99), headers=bearer(secret))).status == 429
    assert (await double_info(double))["prompts_queued"] == prompts == ran


async def test_a_duplicate_of_a_run_still_going_keeps_its_place_held(agent: Client) -> None:
    secret = await make_key(agent, "single", concurrent_runs=1)
    background = bearer(secret, Prefer="respond-async", **{"task-id": "only"})
    going = await agent.post("/api/run", json=save_prompt(1, delay=10 * EVENTUALLY), headers=background)
    assert going.status == 202  # ended by its cancel
    again = await agent.post("/api/run", json=save_prompt(1, delay=10 * EVENTUALLY), headers=background)
    assert again.status == 409 and (await again.json())["message"] == "TaskConflict"
    other = await agent.post("/api/run", json=save_prompt(2), headers=bearer(secret, Prefer="respond-async"))
    await _refusal(other.status, await other.json(), "concurrent_runs")  # the place is still the first run's
    assert (await agent.post("/api/tasks/only/cancel", headers=bearer(secret))).status in (200, 202)
