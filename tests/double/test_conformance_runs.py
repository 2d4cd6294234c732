"""Recorded scenarios replayed against the double acting as the ComfyUI version recorded: every HTTP reply and
every websocket frame (submitting client and observer) must equal the real ComfyUI's, up to volatile values (see
comfy_double.recordings)."""

from __future__ import annotations

from typing import Any

import pytest
from PIL import Image

from comfy_double.harness import DoubleClient, MakeDouble, WsClient
from comfy_double.recordings import (
    as_lines,
    exchange_views,
    id_labels,
    live_frames,
    load,
    recorded_frames,
)
from comfy_double.replay import Replay, upload_payload
from recordings import RECORDED_VERSIONS, recorded

# Each of these is one or more prompts submitted and awaited in turn, or sent on the cues its script recorded
# (comfy_double.replay), so its replay is deterministic.
SCENARIOS = [
    "success_empty_image",
    "success_cached_resubmit",
    "success_loadimage_chain",
    "success_preview_image",
    "success_no_client_id",
    "progress_ws_image_no_flags",
    "progress_ws_image_with_metadata_flag",
    "runtime_error",
    "runtime_error_no_client_id",
    "validation_errors",
    "loadimage_subfolder_reference",
    "upload_image",
    "http_basics",
    "api_prefix",
    "sd15_random_weights",
    "prompt_ids_and_jobs",
    "queue_and_interrupt",
]
RECORDED = [(version, name) for name in SCENARIOS for version in recorded(name)]


async def replay(
    double: DoubleClient, name: str
) -> tuple[dict[str, Any], Replay, list[tuple[dict[str, Any], dict[str, Any]]], WsClient, WsClient | None]:
    """Open the recorded client's socket (and observer, if recorded), then replay the HTTP exchanges."""
    rec = load(name, double.server.config.version)
    Image.new("RGB", (64, 64)).save(double.server.config.input_dir / "example.png")  # shipped with ComfyUI
    main, observer = await double.recorded_sockets(rec)
    replayer = Replay(double, main, upload_payload)
    pairs = await replayer.run(rec["http"])
    for client in (main, observer):
        if client is not None:
            await client.wait_quiet()
    return rec, replayer, pairs, main, observer


def assert_matches(
    rec: dict[str, Any],
    replayer: Replay,
    pairs: list[tuple[dict[str, Any], dict[str, Any]]],
    main: WsClient,
    observer: WsClient | None,
) -> None:
    """HTTP replies, the client's frames and the observer's frames all equal the recording's."""
    ids = id_labels(*replayer.id_pairs)
    live, recorded = exchange_views(pairs, ids)
    assert live == recorded
    assert as_lines(live_frames(main.frames), ids) == as_lines(recorded_frames(rec["ws"]), ids)
    if observer is not None:
        assert as_lines(live_frames(observer.frames), ids) == as_lines(recorded_frames(rec["ws_observer"]), ids)
    assert main.types() == rec["ws_type_sequence"]


def test_every_recorded_version_is_replayed() -> None:
    assert {version for version, _ in RECORDED} == set(RECORDED_VERSIONS)
    assert len(RECORDED) > len(SCENARIOS)


@pytest.mark.parametrize(("version", "name"), RECORDED)
async def test_scenario_matches_recording(make_double: MakeDouble, version: str, name: str) -> None:
    double = await make_double(version=version)
    assert_matches(*await replay(double, name))


@pytest.mark.parametrize("version", recorded("api_prefix"))
async def test_api_prefix_websocket_greets_like_plain_ws(make_double: MakeDouble, version: str) -> None:
    double = await make_double(version=version)
    rec = load("api_prefix", version)
    recorded = recorded_frames(rec["ws_api_prefix"])
    client = await double.ws(recorded[0]["data"]["sid"], path="/api/ws")
    await client.wait_quiet()
    assert live_frames(client.frames) == recorded


async def test_latent_previews_match_both_recordings(make_double: MakeDouble) -> None:
    """Run back to back on one server, as recorded: the second run reuses the loader and encoders."""
    double = await make_double(latent_previews=True)
    for name in ("sd15_latent_previews_no_flags", "sd15_latent_previews_with_metadata_flag"):
        assert_matches(*await replay(double, name))
