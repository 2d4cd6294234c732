"""Recorded ComfyUI traffic, replayed frame by frame, through the agent: the map must match what happened."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from agent_harness import running_agent, serving
from recordings import http_calls, recording
from replay import Replay, view_bytes


def recorded_prompt(name: str, index: int = 0) -> dict[str, Any]:
    prompt: dict[str, Any] = http_calls(name, "POST", "/prompt")[index]["request_json"]["prompt"]
    return prompt


def state(progress: dict[str, Any], node: str) -> tuple[int, int]:
    return progress[node]["max"], progress[node]["value"]


async def replay_runs(name: str, count: int = 1, data: dict[str, Any] | None = None,
                      **settings: Any) -> list[tuple[int, dict[str, Any]]]:
    replay = Replay(name, data)
    replies = []
    async with serving(replay.app()) as url, running_agent(comfyui_url=url, **settings) as agent:
        for index in range(count):
            response = await agent.post("/api/run", json=recorded_prompt(name, index))
            replies.append((response.status, await response.json()))
    return replies


async def test_fresh_run_gives_every_node_finished_and_the_saved_image() -> None:
    [(status, body)] = await replay_runs("success_empty_image")
    assert status == 200
    assert set(body) == {"1", "2"}
    assert state(body, "1") == state(body, "2") == (1, 1)
    assert body["1"]["images"] == [] and "results" not in body["1"]
    assert body["2"]["images"] == [{"filename": "probe_empty_00001_.png", "subfolder": "", "type": "output"}]
    assert body["2"]["results"] == [base64.b64encode(view_bytes("probe_empty_00001_.png")).decode()]
    assert body["2"]["start"] > 1_700_000_000 and body["2"]["last_updated"] >= body["2"]["start"]


async def test_fully_cached_rerun_returns_the_earlier_image() -> None:
    replies = await replay_runs("success_cached_resubmit", count=3)
    assert [status for status, _ in replies] == [200, 200, 200]
    cached = replies[1][1]
    assert state(cached, "1") == state(cached, "2") == (1, 1)
    assert cached["2"]["images"][0]["filename"] == "probe_cache_00001_.png"
    assert replies[2][1]["2"]["images"][0]["filename"] == "probe_cache_b_00001_.png"


async def test_loadimage_chain_reports_output_and_preview_images() -> None:
    [(status, body)] = await replay_runs("success_loadimage_chain")
    assert status == 200
    assert all(state(body, node) == (1, 1) for node in body)
    assert body["13"]["images"] == [{"filename": "inverted_00001_.png", "subfolder": "probe_chain", "type": "output"}]
    assert body["15"]["images"][0]["type"] == "temp"
    assert len(body["15"]["results"]) == 1


async def test_preview_image_counts_as_an_output() -> None:
    [(status, body)] = await replay_runs("success_preview_image")
    assert status == 200
    previews = [image for node in body.values() for image in node["images"]]
    assert previews and all(image["type"] == "temp" for image in previews)


async def test_runtime_error_is_an_execution_error_with_the_progress_so_far() -> None:
    replies = await replay_runs("runtime_error", count=2)
    for status, body in replies:
        assert status == 500
        assert body["message"] == "ExecutionError"
        assert (body["node_id"], body["node_type"]) == ("3", "LoadImage")
        assert body["exception_type"] == "PIL.UnidentifiedImageError"
        assert "cannot identify image file" in body["error"]
        progress = body["progress"]
        assert state(progress, "1") == state(progress, "2") == (1, 1)
        assert state(progress, "3") == (1, 0)
        assert state(progress, "4") == state(progress, "5") == (0, 0)
    assert replies[0][1]["progress"]["2"]["images"][0]["filename"] == "probe_rt_ok_00001_.png"


async def test_interrupted_run_is_canceled_at_the_node_it_stopped() -> None:
    [(status, body)] = await replay_runs("interrupt")
    assert status == 409
    assert body["message"] == "Canceled"
    assert (body["node_id"], body["node_type"]) == ("102", "ImageScale")
    progress = body["progress"]
    assert [state(progress, node) for node in ("1", "100", "101", "102")] == [(1, 1), (1, 1), (1, 1), (1, 0)]


async def test_sampler_steps_become_max_and_value() -> None:
    [(status, body)] = await replay_runs("sd15_random_weights")
    assert status == 200
    assert state(body, "3") == (4, 4)
    assert body["9"]["images"][0]["filename"] == "probe_sd15_00001_.png"


async def test_interrupt_inside_sampling_keeps_the_step_reached() -> None:
    [(status, body)] = await replay_runs("sd15_interrupt_during_sampling")
    assert status == 409
    assert state(body["progress"], "3") == (30, 2)


async def test_websocket_image_node_progress_and_binary_frames() -> None:
    [(status, body)] = await replay_runs("progress_ws_image_no_flags")
    assert status == 200
    assert state(body, "2") == (3, 3)
    assert body["2"]["images"] == []


async def test_socket_dropped_mid_run_is_replaced_and_the_run_completes() -> None:
    [(status, body)] = await replay_runs("reconnect_during_execution")
    assert status == 200
    assert all(state(body, node) == (1, 1) for node in body), body
    assert [image["filename"] for image in body["900"]["images"]] == [
        "probe_recon_677a_00001_.png", "probe_recon_677a_00002_.png"]


def dropped_after(name: str, cut_after: str, resume_at: str) -> dict[str, Any]:
    """The recording with its socket dropped after node `cut_after` starts; the frames up to node `resume_at`
    are lost, the rest reach the reconnected socket."""
    data = recording(name)
    frames = data["ws"]

    def starting(node: str) -> int:
        return next(index for index, frame in enumerate(frames)
                    if frame.get("msg", {}).get("type") == "executing" and frame["msg"]["data"]["node"] == node)

    cut, resume = starting(cut_after) + 1, starting(resume_at)
    data["ws"] = [*frames[:cut], {"t_ms": frames[cut]["t_ms"], "dir": "event", "event": "closed"}]
    sid = {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "x"}
    data["ws_after_reconnect"] = [{"dir": "server->client", "kind": "text", "msg": {"type": "status", "data": sid}},
                                  *frames[resume:]]
    return data


async def test_outputs_reported_while_the_socket_was_away_come_from_the_history() -> None:
    [(status, body)] = await replay_runs("success_loadimage_chain",
                                         data=dropped_after("success_loadimage_chain", "14", "11"))
    assert status == 200
    assert all(state(body, node) == (1, 1) for node in body), body
    assert body["15"]["images"][0]["type"] == "temp", "node 15's executed was lost with the socket"
    assert len(body["15"]["results"]) == 1
    assert body["13"]["images"][0]["filename"] == "inverted_00001_.png"


@pytest.mark.parametrize("index", range(15))
async def test_validation_errors_keep_comfyui_error_and_node_errors(index: int) -> None:
    call = http_calls("validation_errors", "POST", "/prompt")[index]
    if call["status"] != 400:
        pytest.skip("not a rejection")
    replay = Replay("validation_errors")
    replay._posted = index
    async with serving(replay.app()) as url, running_agent(comfyui_url=url) as agent:
        response = await agent.post("/api/run", json=call["request_json"]["prompt"])
        body = await response.json()
    assert response.status == 400
    assert body["message"] == "PromptValidationError"
    comfyui_error = call["body"]["error"]
    assert body["error"] == {**comfyui_error, "message": body["error"]["message"],
                             "comfyui_message": comfyui_error["message"]}  # ComfyUI's, its message made readable
    assert body["node_errors"] == call["body"]["node_errors"]
