"""Websocket registration and message routing, compared with the recorded handshakes and traps."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, cast

import pytest

from comfy_double.harness import DoubleClient, WsClient, control, held
from comfy_double.recordings import as_lines, id_labels, live_frames, load, recorded_frames
from waiting import EVENTUALLY, until

EMPTY_TO_SAVE = {
    "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 48, "batch_size": 1, "color": 255}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "probe_dup"}},
}


def ws_case(name: str) -> dict[str, Any]:
    return cast("dict[str, Any]", next(case for case in load("ws_connect")["cases"] if case["case"] == name))


async def submit(double: DoubleClient, prompt: dict[str, Any], client_id: str | None = None) -> str:
    body = {"prompt": copy.deepcopy(prompt)} | ({"client_id": client_id} if client_id else {})
    status, reply = await double.post_prompt(body)
    assert status == 200, reply
    return cast(str, reply["prompt_id"])


async def test_without_client_id_the_sid_is_a_fresh_uuid_hex(double: DoubleClient) -> None:
    client = await double.ws()
    greeting = (await client.wait_for(lambda f: True)).data
    recorded = recorded_frames(ws_case("no_clientId")["frames"])[0]
    assert re.fullmatch(r"[0-9a-f]{32}", greeting["data"]["sid"])
    for frame in (greeting, recorded):
        frame["data"]["sid"] = "<sid>"
    assert greeting == recorded


@pytest.mark.parametrize("case_name", ["with_clientId", "with_feature_flags", "feature_flags_not_first"])
async def test_handshake_matches_recording(double: DoubleClient, case_name: str) -> None:
    """feature_flags is answered when it is the first JSON message; non-JSON text is ignored."""
    case = ws_case(case_name)
    client = await double.ws(case["client_id"])
    for entry in case["frames"]:
        if entry.get("dir") == "client->server":
            assert client.ws is not None
            await client.ws.send_str(json.dumps(entry["msg"]) if "msg" in entry else entry["raw"])
        await client.wait_quiet()
    assert live_frames(client.frames) == recorded_frames(case["frames"])


async def test_feature_flags_after_another_json_message_are_ignored(double: DoubleClient) -> None:
    client = await double.ws("late-flags")
    assert client.ws is not None
    await client.ws.send_json({"type": "hello"})
    await client.ws.send_json({"type": "feature_flags", "data": {"supports_preview_metadata": True}})
    await client.wait_quiet()
    assert client.types() == ["status"]


async def test_same_client_id_twice_moves_the_registration_to_the_new_socket(double: DoubleClient) -> None:
    case = ws_case("same_clientId_twice")
    first = await double.ws(case["client_id"])
    second = await double.ws(case["client_id"])
    prompt_id = await submit(double, EMPTY_TO_SAVE, case["client_id"])
    await second.wait_done(prompt_id)
    await first.wait_quiet()
    ids = id_labels((case["prompt_response"]["prompt_id"], prompt_id))
    assert as_lines(live_frames(first.frames), ids) == as_lines(recorded_frames(case["first_socket_frames"]), ids)
    assert as_lines(live_frames(second.frames), ids) == as_lines(recorded_frames(case["second_socket_frames"]), ids)


async def test_old_socket_closing_late_orphans_the_new_one(double: DoubleClient) -> None:
    """ComfyUI's trap: the old socket's close removes the new socket's registration; nothing reaches it."""
    rec = load("ws_same_clientid_old_socket_closes_late")
    client_id = rec["A_frames"][1]["msg"]["data"]["sid"]
    old, new = await double.ws(client_id), await double.ws(client_id)
    await new.wait_quiet()
    await old.close()

    async def unregistered() -> bool:  # the old socket's handler has ended, taking the registration with it
        return client_id not in double.server.hub.sockets

    await until(unregistered, EVENTUALLY, "the old socket's close to remove the registration")
    prompt_id = await submit(double, EMPTY_TO_SAVE, client_id)
    entry = await double.wait_history(prompt_id)
    await new.wait_quiet()
    ids = id_labels((rec["prompt_response"]["prompt_id"], prompt_id))
    assert live_frames(old.frames) == recorded_frames(rec["A_frames"])
    assert live_frames(new.frames) == recorded_frames(rec["B_frames"])
    assert as_lines([entry["status"]], ids) == as_lines([rec["history_status"]], ids)
    assert client_id not in double.server.hub.sockets


def shrunk(prompt: dict[str, Any]) -> dict[str, Any]:
    """The recorded long chain at 1/16 of its size (the double's hold makes it last)."""
    prompt = copy.deepcopy(prompt)
    for node in prompt.values():
        for key in ("width", "height"):
            if key in node["inputs"]:
                node["inputs"][key] //= 16
    return prompt


async def test_reconnect_during_execution_gets_current_node_and_no_replay(double: DoubleClient) -> None:
    rec = load("reconnect_during_execution")
    client_id = rec["client_id"]
    first = await double.ws(client_id)
    observer = await double.ws(rec["ws_observer_client_id"])
    async with held(double.url):  # each node waits at its start until stepped on
        prompt_id = await submit(double, shrunk(rec["request"]["prompt"]), client_id)
        await first.wait_for(lambda f: f.type == "executing" and f.data["data"]["node"] == "1")
        await control(double.url, step=True)
        await first.wait_for(lambda f: f.type == "executing" and f.data["data"]["node"] == "100")
        await first.close()
        await control(double.url, step=True)

        async def on_101() -> bool:
            return double.server.hub.last_node_id == "101"

        await until(on_101, EVENTUALLY, "node 101 to start")  # node 100 ends and 101 starts while nobody listens
        await double.server.hub.flush()  # and what was sent meanwhile is out, to nobody: those messages are lost
        second = await double.ws(client_id)
    await second.wait_done(prompt_id)
    await observer.wait_quiet()
    ids = id_labels((rec["http"][0]["body"]["prompt_id"], prompt_id))
    assert as_lines(live_frames(first.frames), ids) == as_lines(recorded_frames(rec["ws"]), ids)
    assert as_lines(live_frames(second.frames), ids) == as_lines(recorded_frames(rec["ws_after_reconnect"]), ids)
    assert as_lines(live_frames(observer.frames), ids) == as_lines(recorded_frames(rec["ws_observer"]), ids)
    assert second.messages("executing")[0]["data"] == {"node": "101"}  # no prompt_id on the reconnect greeting


async def test_each_client_gets_only_its_own_prompt(double: DoubleClient) -> None:
    alice, bob = await double.ws("alice"), await double.ws("bob")
    prompt_id = await submit(double, EMPTY_TO_SAVE, "alice")
    await alice.wait_done(prompt_id)
    await bob.wait_quiet()
    assert set(bob.types()) == {"status"}
    assert len(alice.types()) > len(bob.types())


async def test_progress_and_previews_are_broadcast_without_client_id(double: DoubleClient) -> None:
    """ComfyUI's progress hook sends to ``server.client_id``; None means every socket."""
    observer = await double.ws("observer")
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 2, "color": 0}},
        "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}},
    }
    prompt_id = await submit(double, prompt)
    await double.wait_history(prompt_id)
    await observer.wait_quiet()
    types = observer.types()
    assert types.count("progress") == 2
    assert types.count("<binary PREVIEW_IMAGE>") == 2
    assert not {"executing", "executed", "execution_start", "execution_success"} & set(types)


async def test_messages_for_an_unregistered_client_are_dropped(double: DoubleClient) -> None:
    prompt_id = await submit(double, EMPTY_TO_SAVE, "nobody-listens")
    await double.wait_history(prompt_id)
    late = await double.ws("nobody-listens")
    await late.wait_quiet()
    assert late.types() == ["status"]


async def test_socket_registry_is_visible_in_info(double: DoubleClient) -> None:
    client: WsClient = await double.ws("visible")
    await client.wait_quiet()
    _, info = await double.request("GET", "/__double__/info")
    assert info["sockets"] == ["visible"]
