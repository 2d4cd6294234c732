"""The error rows of API.md that the agent answers itself, each in the seed's JSON shape, losing nothing."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from double_helpers import double_info, save_prompt
from waiting import EVENTUALLY, until

Client = TestClient[web.Request, web.Application]


@pytest.mark.parametrize(("body", "reason"), [
    (b"this is not json", "not valid JSON"),
    (b"[1, 2]", "JSON object"),
    (b'"text"', "JSON object"),
    (b"{}", "non-empty object"),
    (b'{"prompt": {}}', "non-empty object"),
    (b'{"1": 5}', "node '1'"),
    (b'{"1": {"class_type": "EmptyImage", "inputs": [1]}}', "inputs must be an object"),
    (b'{"1": {"class_type": true, "inputs": {}}}', "class_type must be a string"),  # found by schemathesis
    (b'{"1": {"class_type": "X", "_meta": []}}', "_meta must be an object"),
    (b'{"prompt": {"1": {"class_type": "X", "inputs": {}}}, "options": {"timeout": -1}}', "option timeout"),
    (b'{"prompt": {"1": {"class_type": "X", "inputs": {}}}, "options": {"results": "maybe"}}', "option results"),
    (b'{"prompt": {"1": {"class_type": "X", "inputs": {}}}, "options": {"bogus": 1}}', "option bogus"),
    (b"\xff\xfe", "not valid JSON"),
    (b'{"1": {"class_type": "EmptyImage",\n  "inputs": {},}}', "not valid JSON: Expecting property name enclosed in "
                                                              "double quotes at line 2 column 16"),
])
async def test_bad_body_is_request_params_error_and_reaches_nothing(agent: Client, double: str, body: bytes,
                                                                   reason: str) -> None:
    response = await agent.post("/api/run", data=body, headers={"Content-Type": "application/json"})
    assert response.status == 400
    reply = await response.json()
    assert reply["message"] == "RequestParamsError"
    assert reason in reply["error"]
    assert (await double_info(double))["prompts_received"] == 0


@pytest.mark.parametrize("headers", [{"task-id": "../x"}, {"task-id": "a" * 129}, {"x-fc-async-task-id": "a b"},
                                     {"task-id": ""}])
async def test_bad_task_id_is_refused(agent: Client, double: str, headers: dict[str, str]) -> None:
    response = await agent.post("/api/run", json=save_prompt(1), headers=headers)
    assert response.status == 400
    assert (await response.json())["message"] == "RequestParamsError"
    assert (await double_info(double))["prompts_received"] == 0


async def test_bad_task_id_in_query_is_refused(agent: Client) -> None:
    response = await agent.post("/api/run", params={"task_id": "/etc/passwd"}, json=save_prompt(1))
    assert response.status == 400


async def test_task_id_sources_in_order(agent: Client) -> None:
    both = await agent.post("/api/run", params={"task_id": "from-query"}, json=save_prompt(1),
                            headers={"task-id": "from-seed-header", "x-fc-async-task-id": "from-fc"})
    assert both.headers["X-Task-Id"] == "from-seed-header"
    fc = await agent.post("/api/run", params={"task_id": "from-query"}, json=save_prompt(2),
                          headers={"x-fc-async-task-id": "from-fc"})
    assert fc.headers["X-Task-Id"] == "from-fc"
    query = await agent.post("/api/run", params={"task_id": "from-query"}, json=save_prompt(3))
    assert query.headers["X-Task-Id"] == "from-query"
    fresh = await agent.post("/api/run", json=save_prompt(4))
    assert len(fresh.headers["X-Task-Id"]) == 32


async def test_body_over_the_limit_is_413(double: str) -> None:
    async with running_agent(comfyui_url=double, max_body_bytes=4096) as agent:
        prompt = save_prompt(1, prefix="x" * 8000)
        response = await agent.post("/api/run", json=prompt)
        assert response.status == 413
        body = await response.json()
        assert body["message"] == "RequestTooLarge" and body["limit"] == 4096
        assert (await agent.post("/api/run", json=save_prompt(1))).status == 200


async def test_comfyui_not_ready_is_503_with_retry_after() -> None:
    async with running_agent(ready=False, comfyui_url="http://127.0.0.1:9") as agent:
        response = await agent.post("/api/run", json=save_prompt(1), headers={"task-id": "early"})
        assert response.status == 503
        assert int(response.headers["Retry-After"]) > 0
        assert (await response.json())["message"] == "ComfyUIUnavailable"
        assert (await agent.get("/api/status", params={"id": "early"})).status == 404
        assert (await agent.get("/readyz")).status == 503
        assert (await agent.get("/healthz")).status == 200


async def test_same_task_id_while_running_is_409(agent: Client) -> None:
    first = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, delay=1.0), headers={"task-id": "dup"}))

    async def running() -> bool:
        response = await agent.get("/api/tasks/dup")
        return response.status == 200 and (await response.json())["status"] == "running"

    await until(running, EVENTUALLY, "the first run under dup to be running")
    second = await agent.post("/api/run", json=save_prompt(2), headers={"task-id": "dup"})
    assert second.status == 409
    assert (await second.json())["message"] == "TaskConflict"
    assert (await first).status == 200


async def test_wrong_method_on_an_agent_route_is_json_and_not_proxied(agent: Client, double: str) -> None:
    for method, path in (("GET", "/api/run"), ("DELETE", "/api/status"), ("PUT", "/api/tasks/x"),
                         ("POST", "/readyz"), ("GET", "/api/tasks/x/cancel"), ("POST", "/pre-stop"),
                         ("GET", "/initialize"), ("POST", "/app/index.html"), ("DELETE", "/app")):
        wrong = await agent.request(method, path)
        assert wrong.status == 405 and (await wrong.json())["message"] == "MethodNotAllowed", path


    assert wrong.headers["Allow"] == "GET, HEAD"  # the last one, DELETE /app: RFC 9110 wants the methods named


@pytest.mark.parametrize("query", [{"async": "maybe"}, {"results": "perhaps"}, {"task_id": "a b"}])
async def test_a_bad_query_value_after_a_good_prompt_runs_nothing_and_holds_nothing(
        agent: Client, double: str, query: dict[str, str]) -> None:
    response = await agent.post("/api/run", params=query, json=save_prompt(1), headers={"task-id": "q-1"})
    assert response.status == 400 and (await response.json())["message"] == "RequestParamsError"
    assert (await agent.get("/api/tasks/q-1")).status == 404
    assert (await double_info(double))["prompts_received"] == 0
    drained = await agent.get("/pre-stop")  # nothing is left open that would keep the instance from stopping
    assert (await drained.json())["open_runs"] == 0


async def test_a_fault_of_the_agent_mid_run_still_answers_and_is_stored(
        agent: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bug (here: preparing the inputs raises a TypeError) must not leave a held request without an answer."""
    from agent.inputs.prepare import InputPreparer

    async def broken(self: InputPreparer, prompt: dict[str, object]) -> None:
        raise TypeError("a bug")

    monkeypatch.setattr(InputPreparer, "prepare", broken)
    response = await asyncio.wait_for(agent.post("/api/run", json=save_prompt(1), headers={"task-id": "bug-1"}), 60)
    assert response.status == 500
    reply = await response.json()
    assert reply["message"] == "InternalError" and "TypeError: a bug" in reply["error"]
    assert (await (await agent.get("/api/tasks/bug-1")).json())["status"] == "failed"
