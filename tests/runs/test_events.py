"""What a run publishes, as a subscriber sees it: the order of its events, previews attributed to their node, its
outputs, its end; and a subscriber that fails is its own problem, never the run's."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.services import WORKER
from agent.runs.events import (
    RunEnded,
    RunEvent,
    RunOutput,
    RunPreview,
    RunProgressed,
    RunQueued,
    RunStarted,
    RunSubmitted,
)
from agent.stores.log import EventLog
from agent.tasks.model import TaskStatus
from agent_harness import running_agent
from comfy_double.harness import start_double
from double_helpers import save_prompt
from recordings import http_calls

Client = TestClient[web.Request, web.Application]


class Collector:
    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.settled: list[str] = []

    def notify(self, event: RunEvent) -> None:
        self.events.append(event.model_copy(update={"task": event.task.model_copy(deep=True)}))

    async def settle(self, ended: RunEnded) -> None:
        self.settled.append(ended.task.task_id)


class Broken:
    def notify(self, event: RunEvent) -> None:
        raise RuntimeError("a subscriber's own bug")

    async def settle(self, ended: RunEnded) -> None:
        raise RuntimeError("and again at the end")


@pytest.fixture
async def previewing(tmp_path: Path) -> AsyncIterator[tuple[Client, Collector]]:
    runner, url = await start_double(tmp_path / "comfyui", latent_previews=True)
    try:
        async with running_agent(comfyui_url=url) as agent:
            collector = Collector()
            agent.app[WORKER].runs.events.subscribers[:0] = [Broken(), collector]
            yield agent, collector
    finally:
        await runner.cleanup()


def sd_prompt() -> dict[str, Any]:
    prompt: dict[str, Any] = http_calls("sd15_latent_previews_with_metadata_flag", "POST", "/prompt")[0][
        "request_json"]["prompt"]
    return prompt


async def test_a_run_publishes_its_life_in_order_with_previews_of_their_node(
        previewing: tuple[Client, Collector], caplog: pytest.LogCaptureFixture) -> None:
    agent, collector = previewing
    with caplog.at_level(logging.ERROR, logger="agent.run"):
        response = await agent.post("/api/run", json=sd_prompt(), headers={"task-id": "sd-1"})
    assert response.status == 200, await response.text()
    kinds = [type(event) for event in collector.events]
    assert kinds[:3] == [RunQueued, RunSubmitted, RunStarted]
    assert kinds[-1] is RunEnded and collector.settled == ["sd-1"]
    assert collector.events[-1].task.status.value == "succeeded"
    previews = [event for event in collector.events if isinstance(event, RunPreview)]
    assert len(previews) == 4 and {preview.node for preview in previews} == {"3"}  # KSampler, one per step
    assert all(preview.mime == "image/jpeg" and preview.data.startswith(b"\xff\xd8") for preview in previews)
    outputs = [event for event in collector.events if isinstance(event, RunOutput)]
    assert [event.node for event in outputs] == ["9"] and outputs[0].output["images"][0]["type"] == "output"
    steps = [event.task.progress["3"].value for event in collector.events if isinstance(event, RunProgressed)]
    assert steps == sorted(steps) and max(steps) == 4
    assert {event.task.task_id for event in collector.events} == {"sd-1"}
    assert "subscriber.failed" in caplog.text


async def test_two_runs_at_once_each_get_only_their_own_events(previewing: tuple[Client, Collector]) -> None:
    agent, collector = previewing
    replies = await asyncio.gather(
        agent.post("/api/run", json=save_prompt(1, "a", delay=0.2), headers={"task-id": "one"}),
        agent.post("/api/run", json=save_prompt(2, "b"), headers={"task-id": "two"}))
    assert [reply.status for reply in replies] == [200, 200]
    for task_id, prefix in (("one", "a"), ("two", "b")):
        mine = [event for event in collector.events if event.task.task_id == task_id]
        assert type(mine[-1]) is RunEnded
        names = [event.output["images"][0]["filename"] for event in mine if isinstance(event, RunOutput)]
        assert len(names) == 1 and names[0].startswith(f"{task_id}_{prefix}_")


class Keeper:
    """Keeps every event's task as it came, and scribbles on it: the run's record is not what it scribbles on
    (the other subscribers share the snapshot, and must only read it)."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    def notify(self, event: RunEvent) -> None:
        self.events.append(event)
        event.task.status = TaskStatus.FAILED

    async def settle(self, ended: RunEnded) -> None:
        ended.task.error = {"message": "scribbled"}


async def test_events_carry_snapshots_a_subscriber_may_keep_and_cannot_change_the_run_through(
        previewing: tuple[Client, Collector]) -> None:
    agent, collector = previewing
    keeper = Keeper()
    agent.app[WORKER].runs.events.subscribers.append(keeper)
    response = await agent.post("/api/run", json=sd_prompt(), headers={"task-id": "sd-2"})
    assert response.status == 200, await response.text()
    kept = [event.task.progress["3"].value for event in keeper.events if isinstance(event, RunProgressed)]
    copied = [event.task.progress["3"].value for event in collector.events if isinstance(event, RunProgressed)]
    assert kept == copied and max(kept) == 4
    assert "3" in await response.json()  # the run's own record still says it succeeded


class EndWatcher:
    """At its settle, looks (after every other subscriber began its own) for the end in the task's log."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.logged_before_settled: list[bool] = []

    def notify(self, event: RunEvent) -> None:
        pass

    async def settle(self, ended: RunEnded) -> None:
        await asyncio.sleep(0.05)  # the other subscribers' writes are done, or under way, by now
        entries = await self.log.read_events(ended.task.task_id, None, 0)
        self.logged_before_settled.append(any(entry.kind == "end" for entry in entries))


async def test_the_log_tells_the_end_once_every_subscriber_settled(previewing: tuple[Client, Collector]) -> None:
    """A stream's client reads the job back at once, on any instance: the store's record is ended by then."""
    agent, _ = previewing
    services = agent.app[WORKER]
    watcher = EndWatcher(services.stores.log)
    services.runs.events.subscribers.append(watcher)
    response = await agent.post("/api/run", json=save_prompt(3), headers={"task-id": "told-last"})
    assert response.status == 200, await response.text()
    assert watcher.logged_before_settled == [False]
    entries = await services.stores.log.read_events("told-last", None, 0)
    assert entries[-1].kind == "end"
    stored = await services.stores.records.get("told-last")
    assert stored is not None and stored.status is TaskStatus.SUCCEEDED
