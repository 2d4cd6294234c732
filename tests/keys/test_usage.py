"""The usage ledger as `GET /api/usage` reports it (JSON and CSV) and `/metrics` counts it, equal to the tasks'
own timings; and a guessing loop of wrong keys, refused without slowing a right one or leaving a trace."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import logging
import secrets

import pytest

from agent_harness import scrape
from double_helpers import save_prompt
from keys.conftest import ADMIN, Client, bearer, make_key

pytestmark = pytest.mark.timeout(120)
TODAY = datetime.datetime.now(datetime.UTC).date().isoformat()


async def _run(agent: Client, secret: str, task_id: str, color: int) -> dict[str, object]:
    ran = await agent.post("/api/run", json=save_prompt(color, delay=0.05),
                           headers=bearer(secret, **{"task-id": task_id}))
    assert ran.status == 200, await ran.text()
    task: dict[str, object] = await (await agent.get(f"/api/tasks/{task_id}", headers=ADMIN)).json()
    return task


async def test_usage_sums_the_tasks_own_timings_by_key(agent: Client) -> None:
    alice, bob = await make_key(agent, "alice"), await make_key(agent, "bob")
    tasks = {"alice": [await _run(agent, alice, f"a{n}", n) for n in range(3)],
             "bob": [await _run(agent, bob, "b0", 7)]}
    report = await (await agent.get("/api/usage", headers=ADMIN)).json()
    assert report["from"] == TODAY[:8] + "01" and report["to"] == TODAY and report["group"] == "key"
    rows = {row["key"]: row for row in report["rows"]}
    assert set(rows) == {"alice", "bob"}
    for name, done in tasks.items():
        gpu = sum(task["timings"]["execution"] for task in done)  # type: ignore[index]
        queue = sum(task["timings"]["queue"] for task in done)  # type: ignore[index]
        assert rows[name]["tasks"] == len(done)
        assert rows[name]["gpu_seconds"] == pytest.approx(gpu, abs=1e-3)
        assert rows[name]["queue_seconds"] == pytest.approx(queue, abs=1e-3)
        assert rows[name]["cost"] == pytest.approx(gpu * 0.5, abs=1e-3)  # GPU_SECOND_PRICE
        assert rows[name]["output_bytes"] > 0
    assert report["totals"]["tasks"] == 4
    mine = await (await agent.get("/api/usage?group=day", headers=bearer(bob))).json()
    assert [(row["key"], row["day"], row["tasks"]) for row in mine["rows"]] == [("bob", TODAY, 1)]
    refused = await agent.get("/api/usage?key=alice", headers=bearer(bob))
    assert refused.status == 400  # a key reads its own usage only


async def test_usage_as_csv_and_bad_ranges(agent: Client) -> None:
    alice = await make_key(agent, "alice")
    await _run(agent, alice, "c0", 1)
    response = await agent.get(f"/api/usage?from={TODAY}&to={TODAY}&group=day", headers={**ADMIN,
                                                                                      "Accept": "text/csv"})
    assert response.status == 200 and response.content_type == "text/csv"
    rows = list(csv.DictReader(io.StringIO(await response.text())))
    assert [(row["key"], row["day"], row["tasks"]) for row in rows] == [("alice", TODAY, "1")]
    for query in ["from=2026-13-01", "from=2026-12-06&to=2026-12-01", "from=2020-01-01&to=2026-01-01",
                  "group=week"]:
        bad = await agent.get(f"/api/usage?{query}", headers=ADMIN)
        assert bad.status == 400 and (await bad.json())["message"] == "RequestParamsError", query


async def test_metrics_count_runs_by_key(agent: Client) -> None:
    alice = await make_key(agent, "alice")
    await _run(agent, alice, "m0", 1)
    metrics = await scrape(agent, Authorization=ADMIN["Authorization"])
    assert metrics[("comfyui_agent_key_runs_total", (("key", "alice"), ("status", "succeeded")))] == 1
    assert metrics[("comfyui_agent_key_gpu_seconds_total", (("key", "alice"),))] > 0


async def test_a_guessing_loop_is_refused_without_slowing_others_or_a_trace(
        agent: Client, caplog: pytest.LogCaptureFixture) -> None:
    alice = await make_key(agent, "alice", requests_per_minute=1000)
    guesses = [f"cak_{secrets.token_urlsafe(32)}" if n % 2 else secrets.token_urlsafe(24) for n in range(10_000)]
    caplog.set_level(logging.DEBUG)

    async def guessing() -> list[int]:
        statuses = []
        for start in range(0, len(guesses), 100):
            replies = await asyncio.gather(*(agent.get("/api/me", headers=bearer(guess))
                                             for guess in guesses[start:start + 100]))
            statuses += [reply.status for reply in replies]
        return statuses

    async def working() -> list[int]:
        return [(await agent.get("/api/me", headers=bearer(alice))).status for _ in range(50)]

    guessed, worked = await asyncio.gather(guessing(), working())
    assert set(guessed) == {401} and len(guessed) == 10_000
    assert set(worked) == {200}
    logged = caplog.text
    assert not any(guess in logged for guess in guesses[:200]) and alice not in logged
