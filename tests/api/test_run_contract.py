"""POST /api/run against the double: the TProgress contract of API.md, and the timings that broke the seed."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient

from double_helpers import double_info, pixel, rgb, save_prompt, wait_double, with_preview

Client = TestClient[web.Request, web.Application]


async def test_map_has_every_node_and_padded_base64_of_every_image(agent: Client) -> None:
    prompt = with_preview(save_prompt(0x123456, "contract"))
    response = await agent.post("/api/run", json=prompt)
    assert response.status == 200
    body = await response.json()
    assert set(body) == set(prompt)
    assert body["1"]["images"] == [] and "results" not in body["1"]
    for node in ("2", "3"):
        assert body[node]["max"] == body[node]["value"] == 1
        assert len(body[node]["results"]) == len(body[node]["images"]) == 1
        assert len(body[node]["results"][0]) % 4 == 0
        assert pixel(body, node) == rgb(0x123456)
    assert body["3"]["images"][0]["type"] == "temp"
    assert response.headers["X-Task-Status"] == "succeeded"
    stages = [entry.split(";dur=") for entry in response.headers["Server-Timing"].split(", ")]
    assert [stage for stage, _ in stages] == ["claim", "inputs", "queue", "execution", "delivery"]
    assert all(float(milliseconds) >= 0 for _, milliseconds in stages)


async def test_results_can_be_left_out(agent: Client) -> None:
    response = await agent.post("/api/run?results=false", json=save_prompt(7))
    body = await response.json()
    assert response.status == 200 and body["2"]["images"] and "results" not in body["2"]
    enveloped = await agent.post("/api/run", json={"prompt": save_prompt(8), "options": {"results": False}})
    assert "results" not in (await enveloped.json())["2"]


async def test_64_concurrent_runs_each_get_their_own_images(agent: Client) -> None:
    colors = [0x010101 * (index + 1) for index in range(64)]

    async def one(color: int) -> tuple[int, dict[str, Any]]:
        response = await agent.post("/api/run", json=save_prompt(color, f"c{color:06x}"))
        return response.status, await response.json()

    replies = await asyncio.wait_for(asyncio.gather(*(one(color) for color in colors)), timeout=120)
    assert [status for status, _ in replies] == [200] * 64
    assert [pixel(body, "2") for _, body in replies] == [rgb(color) for color in colors]
    filenames = {body["2"]["images"][0]["filename"] for _, body in replies}
    assert len(filenames) == 64


async def test_a_rerun_takes_comfyuis_cache_and_saves_files_of_its_own(agent: Client, double: str) -> None:
    prompt = save_prompt(0xABCDEF, "cached", delay=2.0)
    first = await (await agent.post("/api/run", json=prompt, headers={"task-id": "first"})).json()
    response = await agent.post("/api/run", json=prompt, headers={"task-id": "second"})
    second = await response.json()
    assert response.status == 200
    async with aiohttp.ClientSession() as session, session.get(f"{double}/history") as history:
        entries = list((await history.json()).values())
    rerun = next(entry for entry in entries if entry["prompt"][2]["2"]["inputs"]["filename_prefix"] == "second_cached")
    cached = [data["nodes"] for kind, data in rerun["status"]["messages"] if kind == "execution_cached"]
    assert cached == [["1"]], "the rerun must take the 2 s node from ComfyUI's cache, not execute it again"
    assert [image["filename"] for image in first["2"]["images"]] == ["first_cached_00001_.png"]
    assert [image["filename"] for image in second["2"]["images"]] == ["second_cached_00001_.png"]
    assert second["1"]["max"] == second["1"]["value"] == 1
    assert pixel(second, "2") == rgb(0xABCDEF)


async def test_run_queued_behind_another_completes_and_shows_queued_meanwhile(agent: Client, double: str) -> None:
    slow = asyncio.create_task(agent.post("/api/run", json=save_prompt(1, "slow", delay=1.5)))
    await wait_double(double, lambda info: info["running"], "the slow run executing")
    behind = asyncio.create_task(agent.post("/api/run", json=save_prompt(2, "behind"),
                                            headers={"task-id": "queued-one"}))
    await wait_double(double, lambda info: info["pending"], "the second run waiting behind it")
    status = await agent.get("/api/status", params={"id": "queued-one"})
    assert status.headers["X-Task-Status"] == "queued"
    assert all(node["value"] == 0 for node in (await status.json()).values())
    assert (await slow).status == 200
    response = await behind
    assert response.status == 200
    assert pixel(await response.json(), "2") == rgb(2)


async def test_socket_dropped_mid_run_still_gives_the_final_map(agent: Client) -> None:
    response = await agent.post("/api/run", json=with_preview(save_prompt(0x00FF00, "drop", fault="drop_socket")))
    assert response.status == 200
    body = await response.json()
    assert all(node["max"] == node["value"] == 1 for node in body.values()), body
    assert pixel(body, "2") == rgb(0x00FF00) and pixel(body, "3") == rgb(0x00FF00)


async def test_socket_silent_without_closing_is_replaced_and_the_run_completes(agent: Client) -> None:
    response = await asyncio.wait_for(
        agent.post("/api/run", json=save_prompt(0x0000FF, "stall", delay=0.2, fault="stall_socket")), timeout=30)
    assert response.status == 200
    assert pixel(await response.json(), "2") == rgb(0x0000FF)


async def test_runtime_error_is_500_with_node_and_exception(agent: Client) -> None:
    response = await agent.post("/api/run", json=save_prompt(1, fault="error"))
    assert response.status == 500
    body = await response.json()
    assert body["message"] == "ExecutionError"
    assert (body["node_id"], body["node_type"]) == ("1", "EmptyImage")
    assert body["exception_type"] == "RuntimeError"
    assert body["exception_message"].startswith("double: scripted failure")
    assert body["progress"]["1"] == {**body["progress"]["1"], "max": 1, "value": 0}
    assert body["progress"]["2"]["max"] == 0
    assert response.headers["X-Task-Status"] == "failed"


async def test_comfyui_validation_error_keeps_its_error_and_node_errors(agent: Client, double: str) -> None:
    prompt = save_prompt(1)
    prompt["1"]["inputs"]["width"] = 0
    response = await agent.post("/api/run", json=prompt)
    assert response.status == 400
    body = await response.json()
    assert body["message"] == "PromptValidationError"
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert body["error"]["message"] == "EmptyImage (node 1): width: Value 0 smaller than min of 1"
    assert body["error"]["comfyui_message"] == "Prompt outputs failed validation"
    assert body["node_errors"]["1"]["errors"][0]["type"] == "value_smaller_than_min"
    assert (await double_info(double))["prompts_queued"] == 0


async def test_timeout_is_504_and_the_prompt_is_stopped_in_comfyui(agent: Client, double: str) -> None:
    response = await agent.post("/api/run", json={"prompt": save_prompt(3, delay=30), "options": {"timeout": 0.5}})
    assert response.status == 504
    body = await response.json()
    assert body["message"] == "Timeout" and body["comfyui_released"] is True
    info = await double_info(double)  # at once: the reply came only once ComfyUI had let go of the prompt
    assert info["running"] is None and not info["pending"], info


async def test_fc_async_invocation_header_changes_nothing(agent: Client) -> None:
    response = await agent.post("/api/run", json=save_prompt(9), headers={
        "X-Fc-Invocation-Type": "Async", "x-fc-async-task-id": "fc-task-1"})
    assert response.status == 200
    assert response.headers["X-Task-Id"] == "fc-task-1"
    assert pixel(await response.json(), "2") == rgb(9)
