"""Replaying a recorded scenario's HTTP exchanges against a double."""

from __future__ import annotations

from collections.abc import Callable
from io import BytesIO
from typing import Any

import aiohttp
from PIL import Image

from .harness import DoubleClient, WsClient

UploadPayload = Callable[[dict[str, Any], str], bytes]  # (recorded multipart field, exchange label) -> file content


def upload_payload(field: dict[str, Any], label: str) -> bytes:
    """Stand-ins for recorded uploads (only their sizes were kept): equal sizes give equal bytes. The re-recorded
    versions (comfy_double.record) sent these same stand-ins to the real ComfyUI."""
    if "non-image" in label:
        return (b"this is not an image " * 4)[: field["bytes"]]
    # LoadImage's mask of the chain's source has the image's size, so that source had an alpha channel.
    mode = "RGBA" if field["filename"] == "probe_chain_src.png" else "RGB"
    image = Image.new(mode, (96, 64), (field["bytes"] % 256, 90, 160, 200)[: len(mode)])
    buffer = BytesIO()
    image.save(buffer, format="JPEG" if field["content_type"] == "image/jpeg" else "PNG")
    return buffer.getvalue()


class Replay:
    """Replays a recorded scenario's ``http[]`` against a double, in order, mapping recorded prompt ids and
    output file names to the live ones; after an accepted prompt it waits until the prompt is done.

    A scripted exchange (comfy_double/scripts/) may say when it is sent instead: ``"no_wait": true`` (a prompt
    left running), ``"cue": {"frame": {"type": "executing", "node": "101"}}`` (once the client's socket has seen
    such a message) or ``"cue": {"done": 0}`` (once the scenario's first accepted prompt is done)."""

    def __init__(self, double: DoubleClient, main: WsClient | None, payload: UploadPayload,
                 timeout: float = 10.0) -> None:
        self._double = double
        self._main = main
        self._payload = payload
        self._timeout = timeout
        self.id_pairs: list[tuple[str, str]] = []
        self._names: dict[str, str] = {}
        self._requests: list[dict[str, Any]] = []  # the accepted prompts' requests, in order

    async def run(self, exchanges: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        """(recorded, live) for every exchange."""
        pairs = []
        for recorded in exchanges:
            await self.cued(recorded.get("cue"))
            pairs.append((recorded, await self.exchange(recorded)))
        return pairs

    async def cued(self, cue: dict[str, Any] | None) -> None:
        """Until the exchange's cue, if it has one, has come."""
        if cue is None:
            return
        if "done" in cue:
            await self.wait(self._requests[cue["done"]], self.id_pairs[cue["done"]][1], self._timeout)
            return
        assert self._main is not None, "a frame cue needs the client's socket"
        wanted = cue["frame"]
        await self._main.wait_for(lambda f: f.type == wanted["type"] and not isinstance(f.data, bytes) and all(
            f.data["data"].get(key) == value for key, value in wanted.items() if key != "type"), self._timeout)

    async def exchange(self, recorded: dict[str, Any], wait: bool | None = None) -> dict[str, Any]:
        """Send one recorded request; remember ids and file names from the reply.

        An accepted prompt is awaited unless ``wait`` is False (by default: unless the exchange says ``no_wait``)."""
        if wait is None:
            wait = not recorded.get("no_wait", False)
        path = self._live_path(recorded["path"])
        request = self._request_of(recorded)
        live = await self._double.exchange(recorded["method"], path, **request)
        if "json" in request:
            live["request_json"] = request["json"]
        body: Any = live.get("body")  # the JSON reply, if any
        if recorded["path"].endswith("/prompt") and recorded["method"] == "POST" and live["status"] == 200:
            self.id_pairs.append((recorded["body"]["prompt_id"], body["prompt_id"]))
            self._requests.append(recorded.get("request_json", {}))
            if wait:
                await self.wait(recorded.get("request_json", {}), body["prompt_id"], self._timeout)
        if "/history/" in recorded["path"] and body and "body" in recorded:  # a script has no reply yet
            self._pair_names(recorded["body"], body)
        return live

    def _live_path(self, path: str) -> str:
        for recorded_id, live_id in self.id_pairs:
            path = path.replace(recorded_id, live_id)
        for recorded_name, live_name in self._names.items():
            path = path.replace(f"filename={recorded_name}", f"filename={live_name}")
        return path

    def _request_of(self, recorded: dict[str, Any]) -> dict[str, Any]:
        if "request_json" in recorded:
            return {"json": self._live_ids(recorded["request_json"])}
        if "request_raw" in recorded:
            return {"data": recorded["request_raw"].encode(), "headers": recorded.get("request_headers", {})}
        if "request_multipart" in recorded:
            return {"data": self._form(recorded["request_multipart"]["fields"], recorded.get("label", ""))}
        return {}

    def _live_ids(self, value: Any) -> Any:
        """Recorded prompt ids inside a JSON request (``/interrupt``, ``/queue`` delete) become live ones."""
        if isinstance(value, dict):
            return {key: self._live_ids(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self._live_ids(item) for item in value]
        return dict(self.id_pairs).get(value, value) if isinstance(value, str) else value

    def _form(self, fields: list[dict[str, Any]], label: str) -> aiohttp.FormData:
        form = aiohttp.FormData()
        for field in fields:
            if "filename" in field:
                content = self._payload(field, label)
                form.add_field(field["name"], content, filename=field["filename"], content_type=field["content_type"])
            else:
                form.add_field(field["name"], field["value"])
        return form

    async def wait(self, request: dict[str, Any], prompt_id: str, timeout: float = 10.0) -> None:
        """Until the prompt is done: its client's socket says so, or else its history entry appears."""
        if self._main is not None and request.get("client_id") == self._main.client_id:
            await self._main.wait_done(prompt_id, timeout)
        else:
            await self._double.wait_history(prompt_id, timeout)

    def _pair_names(self, recorded: dict[str, Any], live: dict[str, Any]) -> None:
        """Output file names differ in counters and random temp parts: pair them by position."""
        for recorded_entry, live_entry in zip(recorded.values(), live.values(), strict=True):
            for node_id, outputs in recorded_entry["outputs"].items():
                live_images = live_entry["outputs"][node_id]["images"]
                for before, after in zip(outputs.get("images", []), live_images, strict=True):
                    self._names[before["filename"]] = after["filename"]
