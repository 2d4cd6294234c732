"""Records a real ComfyUI's traffic in the form of ``tests/fixtures/comfyui-*/``, so a new ComfyUI version gets
recordings the double's conformance tests can replay. Run from ``tests/`` against a ComfyUI whose
``--input-directory`` is a folder named ``input`` that the recorder may empty, with an empty
``models/checkpoints/random-sd15.safetensors`` (the checkpoint the recordings name; it is listed, never loaded):

    cd tests && python -m comfy_double.record http://127.0.0.1:8188 fixtures/comfyui-NEW --input-dir DIR/input

Before each scenario the recorder empties the history and the input folder but for ``example.png``, so every
scenario meets the fresh ComfyUI that the double's replays meet.

Each scenario's requests come from an earlier recording (``--source``, the 0.3.64 one by default) or from a script
in ``comfy_double/scripts/`` (requests only): they are sent as the conformance tests send them to the double
(comfy_double.replay, the same upload stand-ins) and every reply and websocket frame is written down. The
requests are the recorded ones, so what changed between versions shows as a difference of replies."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from PIL import Image

from recordings import FIXTURES

from .harness import DoubleClient, Frame, WsClient
from .recordings import binary_summary, sent_feature_flags
from .replay import Replay, upload_payload

SCRIPTS = Path(__file__).resolve().parent / "scripts"
# Each one prompt (or several in turn) awaited before the next request, so one replay gives one recording.
REPLAYED = (
    "success_empty_image", "success_cached_resubmit", "success_loadimage_chain", "success_preview_image",
    "success_no_client_id", "progress_ws_image_no_flags", "progress_ws_image_with_metadata_flag",
    "runtime_error", "runtime_error_no_client_id", "validation_errors", "loadimage_subfolder_reference",
    "upload_image", "http_basics", "api_prefix",
)
KEPT = ("description", "request", "requests", "workflow_3")  # the source's own words and requests, as they were
SENT = ("request_multipart", "request_raw", "request_headers", "cue", "no_wait")  # kept from the source exchange
EXAMPLE = "example.png"  # ComfyUI ships it in input/
SETTLE = 0.3  # seconds of websocket silence that end a scenario (status frames follow a prompt's end)
PROMPT_WAIT = 120.0  # a model-free prompt on a busy CPU


class Recorder:
    """One ComfyUI at ``url``; ``record`` replays one scenario and returns it in the recordings' form."""

    def __init__(self, url: str, source: Path, input_dir: Path) -> None:
        self.url = url
        self.source = source
        self.input_dir = input_dir
        self._start = time.monotonic()

    def _t_ms(self, at: float) -> float:
        return round((at - self._start) * 1000, 1)

    def scenario(self, name: str) -> dict[str, Any]:
        script = SCRIPTS / f"{name}.json"
        path = script if script.is_file() else self.source / f"{name}.json"
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    async def record(self, name: str) -> dict[str, Any]:
        source = self.scenario(name)
        client = DoubleClient.attached(self.url)
        try:
            await self._fresh(client)
            return await self._replayed(client, name, source)
        finally:
            await client.close()

    async def _fresh(self, client: DoubleClient) -> None:
        for entry in self.input_dir.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            elif entry.name != EXAMPLE:
                entry.unlink()
        Image.new("RGB", (64, 64)).save(self.input_dir / EXAMPLE)  # as the double's replays have it
        await client.exchange("POST", "/history", json={"clear": True})

    async def _replayed(self, client: DoubleClient, name: str, source: dict[str, Any]) -> dict[str, Any]:
        flags = sent_feature_flags(source.get("ws", []))
        main = await client.ws(source["client_id"], feature_flags=flags)
        observer = await client.ws(source["ws_observer_client_id"]) if "ws_observer_client_id" in source else None
        await _settled(main, observer)
        replayer = Replay(client, main, upload_payload, PROMPT_WAIT)
        exchanges = [await self._exchange(replayer, recorded) for recorded in source["http"]]
        await _settled(main, observer)
        recorded: dict[str, Any] = {"scenario": name, **{key: source[key] for key in KEPT if key in source}}
        recorded |= {"client_id": source["client_id"], "comfy_base": self.url, "http": exchanges,
                     "ws": self._frames(main, flags), "ws_type_sequence": main.types()}
        if observer is not None:
            recorded |= {"ws_observer_client_id": observer.client_id, "ws_observer": self._frames(observer, None)}
        if "ws_api_prefix" in source:
            recorded["ws_api_prefix"] = await self._greeting(client, source["ws_api_prefix"])
        return recorded

    async def _exchange(self, replayer: Replay, recorded: dict[str, Any]) -> dict[str, Any]:
        await replayer.cued(recorded.get("cue"))
        sent = time.monotonic()
        live = await replayer.exchange(recorded)
        kept: dict[str, Any] = {key: recorded[key] for key in SENT if key in recorded}
        return {"t_ms": self._t_ms(sent), "label": recorded.get("label"), "method": recorded["method"], **kept,
                **live}

    async def _greeting(self, client: DoubleClient, source_frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What ``/api/ws`` sends a new socket (api_prefix's second socket)."""
        sid = next(frame["msg"]["data"]["sid"] for frame in source_frames if frame.get("dir") == "server->client")
        socket = await client.ws(sid, path="/api/ws")
        await _settled(socket, None)
        return self._frames(socket, None)

    def _frames(self, socket: WsClient, flags: dict[str, Any] | None) -> list[dict[str, Any]]:
        sent = [{"t_ms": 0.0, "dir": "client->server", "kind": "text",
                 "msg": {"type": "feature_flags", "data": flags}}] if flags is not None else []
        return sent + [self._frame(frame) for frame in socket.frames]

    def _frame(self, frame: Frame) -> dict[str, Any]:
        entry: dict[str, Any] = {"t_ms": self._t_ms(frame.at), "dir": "server->client"}
        if not isinstance(frame.data, bytes):
            return entry | {"kind": "text", "msg": frame.data}
        summary = binary_summary(frame.data)
        return entry | {"kind": "binary", "bytes": len(frame.data), "event_type": summary["event_type"],
                        "image_decoded": summary["image"], "metadata": summary["metadata"]}


async def _settled(main: WsClient, observer: WsClient | None) -> None:
    for socket in (main, observer):
        if socket is not None:
            await socket.wait_quiet(SETTLE, timeout=PROMPT_WAIT)


async def record_all(out: Path, recorder: Recorder, names: list[str]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        scenario = await recorder.record(name)
        (out / f"{name}.json").write_text(json.dumps(scenario, indent=1) + "\n")
        print(f"recorded {name}: {len(scenario['http'])} exchanges, {len(scenario['ws'])} frames", flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m comfy_double.record", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url", help="the real ComfyUI, e.g. http://127.0.0.1:8188")
    parser.add_argument("out", type=Path, help="where the recordings go, e.g. fixtures/comfyui-0.33.0")
    parser.add_argument("--input-dir", type=Path, required=True, help="that ComfyUI's --input-directory")
    parser.add_argument("--source", type=Path, default=FIXTURES / "comfyui-0.3.64", help="the recordings replayed")
    parser.add_argument("names", nargs="*", help="scenarios (default: every replayable one and every script)")
    options = parser.parse_intermixed_args(argv)
    names = options.names or [*sorted(path.stem for path in SCRIPTS.glob("*.json")), *REPLAYED]
    asyncio.run(record_all(options.out, Recorder(options.url, options.source, options.input_dir), names))


if __name__ == "__main__":
    main(sys.argv[1:])
