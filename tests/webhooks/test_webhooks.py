"""Webhooks to a real receiver on 127.0.0.1 that verifies every signature with `standardwebhooks`: order,
retries, a dead receiver, the throttled progress, the default URL, and the address guard."""

from __future__ import annotations

import itertools
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from agent.config import Settings
from agent.errors import RequestParamsError
from agent.tasks.model import Webhook
from agent.webhooks.address import check_webhook
from agent_harness import running_agent, scrape, serving
from agent_process import free_port
from double_helpers import double_info, save_prompt
from webhook_receiver import SECRET, Receiver

DELIVERIES = "comfyui_agent_webhook_deliveries_total"
HOOKS: dict[str, Any] = {"webhook_secret": SECRET, "url_allow_hosts": frozenset({"127.0.0.1"})}


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    hooks = Receiver()
    async with serving(hooks.app()) as url:
        yield hooks, f"{url}/hook"


def with_hook(prompt: dict[str, Any], url: str, *events: str) -> dict[str, Any]:
    webhook: dict[str, Any] = {"url": url, **({"events": list(events)} if events else {})}
    return {"prompt": prompt, "options": {"webhook": webhook}}


async def test_signed_events_arrive_in_order_before_the_reply(double: str, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    async with running_agent(comfyui_url=double, **HOOKS) as agent:
        reply = await agent.post("/api/run", json=with_hook(save_prompt(0x10, delay=0.2), url),
                                 headers={"task-id": "hook-1"})
        assert reply.status == 200
        assert hooks.types() == ["task.started", "task.succeeded"]  # all there before the reply came
        started, succeeded = hooks.deliveries
        assert started.data["status"] == "running" and succeeded.data["status"] == "succeeded"
        assert succeeded.data["task_id"] == "hook-1" and succeeded.data["progress"]["2"]["images"]
        assert started.message_id != succeeded.message_id and hooks.bad_signatures == 0
        task = await (await agent.get("/api/tasks/hook-1")).json()
    assert task["webhook"]["undelivered"] == [] and task["webhook"]["last_status"] == 200


async def test_a_receiver_failing_twice_gets_the_event_on_the_third_try(
        double: str, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    hooks.answers = [500, 503]
    async with running_agent(comfyui_url=double, **HOOKS) as agent:
        reply = await agent.post("/api/run", json=with_hook(save_prompt(0x20), url, "task.succeeded"),
                                 headers={"task-id": "hook-2"})
        assert reply.status == 200
        task = await (await agent.get("/api/tasks/hook-2")).json()
        metrics = await scrape(agent)
    assert metrics[DELIVERIES, (("outcome", "delivered"), ("type", "task.succeeded"))] == 1
    assert hooks.types() == ["task.succeeded"] and len(set(hooks.attempts)) == 1 and len(hooks.attempts) == 3
    assert task["webhook"]["attempts"] == 3 and task["webhook"]["undelivered"] == []


async def test_a_refusal_is_not_retried(double: str, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    hooks.answers = [410]
    async with running_agent(comfyui_url=double, **HOOKS) as agent:
        await agent.post("/api/run", json=with_hook(save_prompt(0x30), url, "task.succeeded"),
                         headers={"task-id": "hook-3"})
        task = await (await agent.get("/api/tasks/hook-3")).json()
        metrics = await scrape(agent)
    assert metrics[DELIVERIES, (("outcome", "failed"), ("type", "task.succeeded"))] == 1
    assert len(hooks.attempts) == 1
    assert task["webhook"] | {"url": None} == {"url": None, "events": ["task.succeeded"], "attempts": 1,
                                               "last_status": 410, "last_error": None,
                                               "undelivered": ["task.succeeded"]}


async def test_a_dead_receiver_leaves_the_result_intact_and_the_failure_on_the_task(double: str) -> None:
    dead = f"http://127.0.0.1:{free_port()}/hook?token=abc"
    async with running_agent(comfyui_url=double, webhook_timeout=1.0, **HOOKS) as agent:
        reply = await agent.post("/api/run", json=with_hook(save_prompt(0x40), dead), headers={"task-id": "hook-4"})
        body = await reply.json()
        assert reply.status == 200 and body["2"]["results"]
        task = await (await agent.get("/api/tasks/hook-4?results=true")).json()
    assert task["status"] == "succeeded" and task["progress"]["2"]["results"] == body["2"]["results"]
    webhook = task["webhook"]
    assert webhook["undelivered"] == ["task.started", "task.succeeded"] and webhook["attempts"] >= 2
    assert webhook["last_status"] is None and "Connect" in webhook["last_error"]
    assert webhook["url"] == dead.split("?", maxsplit=1)[0]  # the query, where secrets live, is not shown


async def test_progress_is_opt_in_and_throttled_to_one_a_second(double: str, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    prompt = save_prompt(0x50, delay=2.2)
    async with running_agent(comfyui_url=double, **HOOKS) as agent:
        reply = await agent.post("/api/run", json=with_hook(prompt, url, "task.progress", "task.succeeded"))
        assert reply.status == 200
    types = hooks.types()
    assert types[-1] == "task.succeeded" and set(types[:-1]) == {"task.progress"} and len(types) >= 2
    times = [delivery.at for delivery in hooks.deliveries if delivery.type == "task.progress"]
    assert all(later - earlier >= 0.9 for earlier, later in itertools.pairwise(times)), times


async def test_the_default_url_serves_requests_that_name_none(double: str, receiver: tuple[Receiver, str]) -> None:
    hooks, url = receiver
    async with running_agent(comfyui_url=double, webhook_url=url, **HOOKS) as agent:
        assert (await agent.post("/api/run", json=save_prompt(0x60))).status == 200
    assert hooks.types() == ["task.started", "task.succeeded"]


@pytest.mark.parametrize(("url", "reason"), [
    ("http://169.254.169.254/hook", "link-local"),
    ("http://10.1.2.3/hook", "private"),
    ("http://localhost:{port}/hook", "loopback"),  # a name that resolves to a refused address
    ("http://[::1]:{port}/hook", "loopback"),
])
async def test_a_webhook_the_guard_refuses_is_a_400_before_anything_runs(double: str, url: str, reason: str) -> None:
    async with running_agent(comfyui_url=double, webhook_secret=SECRET) as agent:
        refused = await agent.post("/api/run", json=with_hook(save_prompt(0x70), url.format(port=free_port())),
                                   headers={"task-id": "hook-7"})
        assert refused.status == 400
        reply = await refused.json()
        assert reply["message"] == "RequestParamsError" and "webhook.url" in reply["error"], reply
        assert reason in reply["error"], reply
        assert "URL_ALLOW_PRIVATE" in reply["error"] and "URL_ALLOW_HOSTS" in reply["error"]
        assert (await double_info(double))["prompts_received"] == 0


async def test_a_webhook_host_that_does_not_resolve_is_a_400_that_says_so() -> None:
    async def no_answer(host: str, port: int) -> list[str]:  # as getaddrinfo fails, without asking any DNS
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    with pytest.raises(RequestParamsError) as refused:
        await check_webhook(Webhook(url="http://nowhere.example/hook"), Settings().webhooks, no_answer)
    assert "does not resolve" in str(refused.value) and "refused" not in str(refused.value)


async def test_a_refused_default_webhook_is_tried_once_never_retried(double: str) -> None:
    """WEBHOOK_URL is the operator's and is not checked per request; the guard's refusal at sending time is final:
    with the whole WEBHOOK_TIMEOUT to retry in, the sender still stops after each event's first attempt."""
    async with running_agent(comfyui_url=double, webhook_secret=SECRET, webhook_url="http://10.1.2.3/hook",
                             webhook_timeout=60.0) as agent:
        reply = await agent.post("/api/run", json=save_prompt(0x72), headers={"task-id": "hook-8"})
        assert reply.status == 200
        webhook = (await (await agent.get("/api/tasks/hook-8")).json())["webhook"]
    assert webhook["undelivered"] == ["task.started", "task.succeeded"], webhook
    assert webhook["attempts"] == 2, webhook  # one for each event
    assert "private" in webhook["last_error"] and "URL_ALLOW_PRIVATE" in webhook["last_error"]


async def test_bad_webhook_options_are_a_400(double: str) -> None:
    async with running_agent(comfyui_url=double, webhook_secret=SECRET) as agent:
        for bad in ({"url": "ftp://x/y"}, {"url": "http://user:pw@x/y"}, {"url": "http://x/", "events": []},
                    {"url": "http://x/", "events": ["task.exploded"]}, {"events": ["task.started"]}):
            refused = await agent.post("/api/run", json={"prompt": save_prompt(1), "options": {"webhook": bad}})
            assert refused.status == 400 and (await refused.json())["message"] == "RequestParamsError", bad
