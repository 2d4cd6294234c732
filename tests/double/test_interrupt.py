"""POST /interrupt: the recorded interruptions reproduced frame for frame, and the double's interruptible delay."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from comfy_double.harness import DoubleClient, Frame, WsClient, control, held
from comfy_double.recordings import as_lines, exchange_views, id_labels, live_frames, load, recorded_frames
from comfy_double.replay import Replay
from waiting import EVENTUALLY


def no_upload(field: dict[str, Any], label: str) -> bytes:
    raise AssertionError(f"no upload expected: {label}")


def runs(node: str) -> Callable[[Frame], bool]:
    """Predicate: the client was told that node started."""
    return lambda f: f.type == "executing" and f.data["data"]["node"] == node


def assert_frames(rec: dict[str, Any], ids: dict[str, str], main: WsClient, observer: WsClient | None) -> None:
    assert as_lines(live_frames(main.frames), ids) == as_lines(recorded_frames(rec["ws"]), ids)
    if observer is not None:
        assert as_lines(live_frames(observer.frames), ids) == as_lines(recorded_frames(rec["ws_observer"]), ids)


async def interrupt_recorded_chain(double: DoubleClient) -> None:
    """interrupt.json on the recorded (real-size) chain: the interrupt lands while ImageScale 101 works,
    so ComfyUI stops when the next node starts; a wrong prompt_id and an idle interrupt change nothing."""
    rec = load("interrupt")
    main, observer = await double.recorded_sockets(rec)
    replayer = Replay(double, main, no_upload)
    post, *during, history, idle = rec["http"]
    pairs = [(post, await replayer.exchange(post, wait=False))]
    await main.wait_for(runs("101"))
    pairs += [(entry, await replayer.exchange(entry)) for entry in during]
    await main.wait_done(replayer.id_pairs[0][1])
    pairs += [(entry, await replayer.exchange(entry)) for entry in (history, idle)]
    assert observer is not None
    await observer.wait_quiet()
    ids = id_labels(*replayer.id_pairs)
    live, recorded = exchange_views(pairs, ids)
    assert live == recorded
    assert_frames(rec, ids, main, observer)


async def test_interrupt_then_interrupt_without_client_id(double: DoubleClient) -> None:
    """Both recordings, in their recorded order: the second run starts with nodes 1, 100, 101 cached."""
    await interrupt_recorded_chain(double)
    rec = load("interrupt_no_client_id")
    main, observer = await double.recorded_sockets(rec)
    replayer = Replay(double, main, no_upload)
    post, interrupt, history = rec["http"]
    pairs = [(post, await replayer.exchange(post, wait=False))]
    assert observer is not None
    await observer.wait_for(lambda f: f.type == "progress_state" and "103" in f.data["data"]["nodes"])
    pairs += [(interrupt, await replayer.exchange(interrupt))]
    await double.wait_history(replayer.id_pairs[0][1])
    pairs += [(history, await replayer.exchange(history))]
    for client in (main, observer):
        await client.wait_quiet()
    ids = id_labels(*replayer.id_pairs)
    live, recorded = exchange_views(pairs, ids)
    assert live == recorded
    assert_frames(rec, ids, main, observer)


def progress_reached(value: int) -> Callable[[Frame], bool]:
    return lambda f: isinstance(f.data, dict) and f.type == "progress" and f.data["data"]["value"] >= value


async def test_interrupt_inside_ksampler_matches_recording(double: DoubleClient) -> None:
    """Warm the loader and encoders as the recorded server was, then sample step by step (the double's hold) and
    interrupt after step 2."""
    warm_up = load("sd15_random_weights")["requests"][2]
    status, reply = await double.post_prompt({"prompt": warm_up["prompt"]})
    assert status == 200
    await double.wait_history(reply["prompt_id"])
    rec = load("sd15_interrupt_during_sampling")
    main, observer = await double.recorded_sockets(rec)
    replayer = Replay(double, main, no_upload)
    post, interrupt, history = rec["http"]
    async with held(double.url):
        pairs = [(post, await replayer.exchange(post, wait=False))]
        for frame in (runs("5"), runs("3"), progress_reached(1)):  # each waits at the hold once it is seen
            await main.wait_for(frame)
            await control(double.url, step=True)
        await main.wait_for(progress_reached(2))
        pairs += [(interrupt, await replayer.exchange(interrupt))]
    await main.wait_done(replayer.id_pairs[0][1])
    pairs += [(history, await replayer.exchange(history))]
    ids = id_labels(*replayer.id_pairs)
    live, recorded = exchange_views(pairs, ids)
    assert live == recorded
    assert_frames(rec, ids, main, observer)


async def test_an_interrupt_ends_a_delay_at_once(double: DoubleClient) -> None:
    client = await double.ws("impatient")
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
              "_meta": {"double": {"delay": 10 * EVENTUALLY}}},  # far beyond any wait below: only the interrupt ends it
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    _, reply = await double.post_prompt({"prompt": prompt, "client_id": "impatient"})
    await client.wait_for(runs("1"))
    await double.request("POST", "/interrupt", json={"prompt_id": reply["prompt_id"]})
    interrupted: Frame = await client.wait_for(lambda f: f.type == "execution_interrupted", EVENTUALLY)
    assert interrupted.data["data"]["node_id"] == "1"
    assert interrupted.data["data"]["executed"] == []
    await client.wait_done(reply["prompt_id"])


async def test_progress_is_spread_over_the_delay(double: DoubleClient) -> None:
    client = await double.ws("steps")
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
              "_meta": {"double": {"delay": 0.3, "progress": 3}}},
        "2": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}},
    }
    started = time.monotonic()
    _, reply = await double.post_prompt({"prompt": prompt, "client_id": "steps"})
    await client.wait_done(reply["prompt_id"])
    assert time.monotonic() - started >= 0.3
    progress = [m["data"] for m in client.messages("progress")]
    assert [(p["value"], p["max"], p["node"]) for p in progress] == [(1, 3, "1"), (2, 3, "1"), (3, 3, "1")]
