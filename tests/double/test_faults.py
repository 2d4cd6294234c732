"""The double's fault hooks: per-node ``_meta.double.fault``, ``/__double__/control`` (the hold included) and
``/__double__/info``."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any, cast

import aiohttp

from comfy_double.harness import DoubleClient, DoubleProcess, Frame, MakeDouble, WsClient, control, held
from waiting import EVENTUALLY


def chain(fault: str | None = None, delay: float | None = None) -> dict[str, Any]:
    """EmptyImage -> PreviewImage, with the hooks on the PreviewImage."""
    preview: dict[str, Any] = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    hooks = {key: value for key, value in (("fault", fault), ("delay", delay)) if value is not None}
    if hooks:
        preview["_meta"] = {"double": hooks}
    empty = {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0}}
    return {"1": empty, "2": preview}


async def submit(double: DoubleClient, prompt: dict[str, Any], client_id: str) -> str:
    status, reply = await double.post_prompt({"prompt": prompt, "client_id": client_id})
    assert status == 200, reply
    return cast(str, reply["prompt_id"])


def executing_preview(frame: Frame) -> bool:
    return frame.type == "executing" and frame.data["data"]["node"] == "2"


def executing_empty(frame: Frame) -> bool:
    return frame.type == "executing" and frame.data["data"]["node"] == "1"


async def test_crash_exits_the_process_after_the_node_starts(tmp_path: Path) -> None:
    process = await DoubleProcess(tmp_path).start(EVENTUALLY)
    try:
        async with aiohttp.ClientSession() as session:
            client = await WsClient(session, process.url, "doomed").connect()
            await client.wait_quiet()
            async with session.post(process.url + "/prompt", json={"prompt": chain("crash"), "client_id": "doomed"}):
                pass
            await client.wait_for(executing_preview)  # everything up to the node's start got out
            code = await process.wait_exit(EVENTUALLY)
            await client.close()
    finally:
        process.stop()
    assert code == 1
    assert "got prompt" in process.output()


async def test_drop_socket_aborts_the_clients_socket_and_the_prompt_still_finishes(double: DoubleClient) -> None:
    client = await double.ws("dropped")
    prompt_id = await submit(double, chain("drop_socket", delay=0.2), "dropped")
    await client.wait_for(executing_preview)
    await asyncio.wait_for(client.close(), EVENTUALLY)
    assert client.closed
    assert client.types()[-1] == "executing"  # nothing after the node started
    entry = await double.wait_history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    late = await double.ws("dropped")
    await late.wait_quiet()
    assert late.types() == ["status"]  # what was sent while it was gone is lost


async def test_stall_socket_keeps_it_open_but_silent(double: DoubleClient) -> None:
    assert double.session is not None
    stalled = await double.session.ws_connect(double.url + "/ws?clientId=stalled", heartbeat=0.1)
    other = await double.ws("other")
    prompt_id = await submit(double, chain("stall_socket"), "stalled")
    received: list[dict[str, Any]] = []
    while not received or received[-1].get("data", {}).get("node") != "2":
        received.append(await stalled.receive_json(timeout=EVENTUALLY))
    await double.wait_history(prompt_id)
    await other.wait_quiet()
    await asyncio.sleep(0.3)  # the thing tested: several 0.1 s heartbeats pass, and the pings are still answered
    assert not stalled.closed
    assert other.types()[-1] == "status"  # broadcasts went on for the others
    await stalled.close()


async def test_error_fault_is_a_runtime_error_from_the_node(double: DoubleClient) -> None:
    client = await double.ws("failing")
    prompt_id = await submit(double, chain("error"), "failing")
    await client.wait_done(prompt_id)
    error = client.messages("execution_error")[0]["data"]
    assert (error["node_id"], error["node_type"], error["exception_type"]) == ("2", "PreviewImage", "RuntimeError")
    assert error["exception_message"] == "double: scripted failure\n"
    assert error["executed"] == ["1"]
    assert set(error["current_inputs"]) == {"images", "prompt", "extra_pnginfo"}


async def test_unknown_fault_fails_the_node(double: DoubleClient) -> None:
    client = await double.ws("typo")
    prompt_id = await submit(double, chain("explode"), "typo")
    await client.wait_done(prompt_id)
    assert client.messages("execution_error")[0]["data"]["exception_type"] == "ValueError"


async def test_crash_and_exit_call_the_exit_hook(make_double: MakeDouble) -> None:
    exits: list[int] = []
    double = await make_double(exit_process=exits.append)
    client = await double.ws("hooked")
    prompt_id = await submit(double, chain("crash"), "hooked")
    await client.wait_done(prompt_id)  # the stub returns, so this in-process double carries on
    status, reply = await double.request("POST", "/__double__/control", json={"exit": 3})
    assert (status, exits) == (200, [1, 3])
    assert reply == {"ws_send_delay": 0.0, "node_delay": {}, "hold": False}


async def test_control_drop_and_stall_every_socket(double: DoubleClient) -> None:
    dropped = await double.ws("a")
    await double.request("POST", "/__double__/control", json={"drop_sockets": True})
    await asyncio.wait_for(dropped.close(), EVENTUALLY)
    stalled = await double.ws("b")
    await stalled.wait_quiet()
    await double.request("POST", "/__double__/control", json={"stall_sockets": True})
    fresh = await double.ws("c")
    prompt_id = await submit(double, chain(), "c")
    await fresh.wait_done(prompt_id)
    await stalled.wait_quiet()
    assert stalled.types() == ["status"] and not stalled.closed


async def test_ws_send_delay_slows_every_frame(double: DoubleClient) -> None:
    await double.request("POST", "/__double__/control", json={"ws_send_delay": 0.05})
    client = await double.ws("slow")
    started = time.monotonic()
    prompt_id = await submit(double, chain(), "slow")
    await client.wait_done(prompt_id)
    assert time.monotonic() - started >= 0.05 * 10  # about 14 frames for this prompt


async def test_info_counts_what_the_double_saw(double: DoubleClient) -> None:
    client = await double.ws("counted")
    await double.post_prompt({"prompt": {}})  # rejected, still received
    await double.upload("x.png", b"not really a png")
    async with held(double.url):
        running = await submit(double, chain(), "counted")
        pending = await submit(double, chain(), "counted")
        await client.wait_for(executing_empty)
        _, info = await double.request("GET", "/__double__/info")
    assert (info["prompts_received"], info["prompts_queued"], info["uploads"]) == (3, 2, 1)
    assert (info["running"], info["pending"], info["sockets"]) == (running, [pending], ["counted"])
    assert info["held"] == running and isinstance(info["pid"], int)
    await client.wait_done(pending)


async def test_hold_keeps_each_node_at_its_start_until_stepped_on_or_released(double: DoubleClient) -> None:
    client = await double.ws("held")
    async with held(double.url):
        prompt_id = await submit(double, chain(), "held")
        await client.wait_for(executing_empty)
        assert (await double.request("GET", "/__double__/info"))[1]["held"] == prompt_id
        assert await double.request("GET", f"/history/{prompt_id}") == (200, {})
        assert (await control(double.url, step=True))["hold"] is True  # node 1 goes on, node 2 waits
        await client.wait_for(executing_preview)
        assert (await double.request("GET", "/__double__/info"))[1]["held"] == prompt_id
        assert "executed" not in client.types()  # the preview, held at its start, saved nothing yet
    await client.wait_done(prompt_id)
    assert (await double.request("GET", "/__double__/info"))[1]["held"] is None
    assert (await double.wait_history(prompt_id))["status"]["status_str"] == "success"


async def test_an_interrupt_ends_the_wait_at_the_hold(double: DoubleClient) -> None:
    client = await double.ws("stopped")
    async with held(double.url):
        prompt_id = await submit(double, chain(), "stopped")
        await client.wait_for(executing_empty)
        await double.request("POST", "/interrupt", json={"prompt_id": prompt_id})
        interrupted = await client.wait_for(lambda f: f.type == "execution_interrupted")
        assert (interrupted.data["data"]["node_id"], interrupted.data["data"]["executed"]) == ("1", [])
        await client.wait_done(prompt_id)  # while the hold is still on: the interrupt ended the wait
