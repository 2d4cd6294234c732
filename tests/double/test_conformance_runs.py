"""Recorded scenarios replayed against the double: every HTTP reply and every websocket frame (submitting
client and observer) must equal the real ComfyUI's, up to volatile values (see comfy_double.recordings)."""

from __future__ import annotations

from io import BytesIO
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
from comfy_double.replay import Replay

# Each of these is one or more prompts submitted and awaited in turn, so its replay is deterministic.
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
]


def upload_payload(field: dict[str, Any], label: str) -> bytes:
    """Stand-ins for recorded uploads (only their sizes were kept): equal sizes give equal bytes."""
    if "non-image" in label:
        return (b"this is not an image " * 4)[: field["bytes"]]
    # LoadImage's mask of the chain's source has the image's size, so that source had an alpha channel.
    mode = "RGBA" if field["filename"] == "probe_chain_src.png" else "RGB"
    image = Image.new(mode, (96, 64), (field["bytes"] % 256, 90, 160, 200)[: len(mode)])
    buffer = BytesIO()
    image.save(buffer, format="JPEG" if field["content_type"] == "image/jpeg" else "PNG")
    return buffer.getvalue()


async def replay(
    double: DoubleClient, name: str
) -> tuple[dict[str, Any], Replay, list[tuple[dict[str, Any], dict[str, Any]]], WsClient, WsClient | None]:
    """Open the recorded client's socket (and observer, if recorded), then replay the HTTP exchanges."""
    rec = load(name)
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


@pytest.mark.parametrize("name", SCENARIOS)
async def test_scenario_matches_recording(double: DoubleClient, name: str) -> None:
    assert_matches(*await replay(double, name))


async def test_api_prefix_websocket_greets_like_plain_ws(double: DoubleClient) -> None:
    rec = load("api_prefix")
    recorded = recorded_frames(rec["ws_api_prefix"])
    client = await double.ws(recorded[0]["data"]["sid"], path="/api/ws")
    await client.wait_quiet()
    assert live_frames(client.frames) == recorded


async def test_latent_previews_match_both_recordings(make_double: MakeDouble) -> None:
    """Run back to back on one server, as recorded: the second run reuses the loader and encoders."""
    double = await make_double(latent_previews=True)
    for name in ("sd15_latent_previews_no_flags", "sd15_latent_previews_with_metadata_flag"):
        assert_matches(*await replay(double, name))
