"""Helpers for tests: the double in-process or as a ComfyUI-like subprocess, and a recording ws client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import aiohttp
from aiohttp import web

from .config import DoubleConfig
from .recordings import decode_image, sent_feature_flags
from .server import SERVER_KEY, DoubleServer, create_app
from .values import PREVIEW_IMAGE, PREVIEW_IMAGE_WITH_METADATA
from .versions import OLDEST

PACKAGE_DIR = Path(__file__).resolve().parent
BINARY_NAMES = {PREVIEW_IMAGE: "PREVIEW_IMAGE", PREVIEW_IMAGE_WITH_METADATA: "PREVIEW_IMAGE_WITH_METADATA"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _refuse_exit(code: int) -> None:
    raise RuntimeError(f"exit({code}) requested from an in-process double; use DoubleProcess for that")


def dirs_config(root: Path, **config: Any) -> DoubleConfig:
    """A DoubleConfig with input/, output/ and temp/ under root."""
    return DoubleConfig(input_dir=root / "input", output_dir=root / "output", temp_dir=root / "temp", **config)


async def start_double(tmp_path: Path, **config: Any) -> tuple[web.AppRunner, str]:
    """Serve a double in this process on 127.0.0.1 (free port); returns the runner (to clean up) and base url.

    ``crash`` and control ``exit`` raise instead of exiting the test process unless ``exit_process`` is given.
    Unless ``version`` is given it acts as ComfyUI ``DOUBLE_COMFYUI_VERSION`` (the oldest recorded by default),
    so the whole suite can run as either (CI runs it as each).
    """
    config.setdefault("exit_process", _refuse_exit)
    config.setdefault("version", os.environ.get("DOUBLE_COMFYUI_VERSION", OLDEST))
    runner = web.AppRunner(create_app(dirs_config(tmp_path, **config)), access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    return runner, f"http://127.0.0.1:{sock.getsockname()[1]}"


async def control(url: str, **knobs: Any) -> dict[str, Any]:
    """``POST /__double__/control`` on the double at ``url``: set knobs (``hold=True``...); returns them all."""
    async with aiohttp.ClientSession() as session, session.post(f"{url}/__double__/control", json=knobs) as reply:
        assert reply.status == 200, await reply.text()
        return cast("dict[str, Any]", await reply.json())


@contextlib.asynccontextmanager
async def held(url: str) -> AsyncIterator[None]:
    """Inside the block the double at ``url`` holds every node as it starts (the ``hold`` knob): a run lasts
    until the test leaves the block (or steps it on), however slow the machine."""
    await control(url, hold=True)
    try:
        yield
    finally:
        await control(url, hold=False)


class DoubleProcess:
    """``main.py`` started the way the agent starts ComfyUI, with its directories under a tmp path."""

    def __init__(self, root: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "double.log"
        self._extra_args = extra_args
        self._env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def command(self) -> list[str]:
        """The command line: ComfyUI's flags, directories under root."""
        dirs = ["--input-directory", str(self.root / "input"), "--output-directory", str(self.root / "output")]
        dirs += ["--temp-directory", str(self.root)]
        listen = ["--listen", "127.0.0.1", "--port", str(self.port), "--cpu", "--disable-auto-launch"]
        return [sys.executable, "main.py", *listen, *dirs, *self._extra_args]

    def launch(self) -> None:
        """Start the process without waiting for it to serve."""
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                self.command(), cwd=PACKAGE_DIR, stdout=log, stderr=subprocess.STDOUT, env=self._env
            )

    async def start(self, timeout: float = 15.0) -> DoubleProcess:
        """Launch and wait until ``/system_stats`` answers."""
        self.launch()
        await self.wait_ready(timeout)
        return self

    async def wait_ready(self, timeout: float = 15.0) -> None:
        """Poll ``/system_stats`` until it answers 200; fail early if the process died."""
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                if self.returncode() is not None:
                    raise RuntimeError(f"double exited with {self.returncode()}:\n{self.output()}")
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(self.url + "/system_stats") as response:
                        if response.status == 200:
                            return
                await asyncio.sleep(0.05)
        raise TimeoutError(f"double not serving after {timeout}s:\n{self.output()}")

    def returncode(self) -> int | None:
        """The exit status, or None while running."""
        assert self.process is not None, "not started"
        return self.process.poll()

    async def wait_exit(self, timeout: float = 10.0) -> int:
        """Wait for the process to exit on its own; returns its exit status."""
        deadline = time.monotonic() + timeout
        while (code := self.returncode()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"double still running after {timeout}s")
            await asyncio.sleep(0.02)
        return code

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send a signal (SIGKILL by default)."""
        assert self.process is not None, "not started"
        self.process.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGTERM, then SIGKILL if it does not exit in time; returns the exit status."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def output(self) -> str:
        """Everything the process printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Frame:
    """One received websocket frame: a JSON message or a binary preview."""

    data: Any  # dict for a text frame, bytes for a binary one
    at: float = field(default_factory=time.monotonic)  # when it arrived (the recorder's t_ms)

    @property
    def type(self) -> str:
        """The message type; binary frames are named like the recordings: ``<binary PREVIEW_IMAGE>``."""
        if isinstance(self.data, bytes):
            return f"<binary {BINARY_NAMES.get(struct.unpack('>I', self.data[:4])[0], 'UNKNOWN')}>"
        return str(self.data["type"])


class WsClient:
    """A websocket client that records every frame it receives, like the recordings' ``ws[]``."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, client_id: str | None = None) -> None:
        self._session = session
        self._base_url = base_url
        self.client_id = client_id
        self.frames: list[Frame] = []
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._changed = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None

    async def connect(self, path: str = "/ws", feature_flags: dict[str, Any] | None = None) -> WsClient:
        """Open the socket (``?clientId=`` when set) and optionally send feature_flags first."""
        query = f"?clientId={self.client_id}" if self.client_id else ""
        self.ws = await self._session.ws_connect(self._base_url + path + query)
        if feature_flags is not None:
            await self.ws.send_json({"type": "feature_flags", "data": feature_flags})
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            frame = Frame(json.loads(msg.data) if msg.type == aiohttp.WSMsgType.TEXT else msg.data)
            async with self._changed:
                self.frames.append(frame)
                self._changed.notify_all()
        async with self._changed:
            self._changed.notify_all()

    @property
    def closed(self) -> bool:
        """True once the server side went away."""
        return self._reader is not None and self._reader.done()

    def types(self) -> list[str]:
        """The type sequence, as the recordings' ``ws_type_sequence``."""
        return [frame.type for frame in self.frames]

    def messages(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Received JSON messages, optionally of one type."""
        return [f.data for f in self.frames if not isinstance(f.data, bytes) and kind in (None, f.data["type"])]

    async def wait_for(self, predicate: Callable[[Frame], bool], timeout: float = 10.0) -> Frame:
        """The first frame (received or to come) that matches."""

        async def match() -> Frame:
            async with self._changed:
                while True:
                    found = next((frame for frame in self.frames if predicate(frame)), None)
                    if found is not None:
                        return found
                    if self.closed:
                        raise ConnectionError("websocket closed before the expected frame")
                    await self._changed.wait()

        return await asyncio.wait_for(match(), timeout)

    async def wait_quiet(self, quiet: float = 0.05, timeout: float = 10.0) -> None:
        """Return once no frame has arrived for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        seen = -1
        while len(self.frames) != seen and time.monotonic() < deadline:
            seen = len(self.frames)
            await asyncio.sleep(quiet)

    async def wait_done(self, prompt_id: str, timeout: float = 10.0) -> Frame:
        """The per-client "done" signal: ``executing`` with ``node: null`` for this prompt."""
        return await self.wait_for(lambda f: is_done(f, prompt_id), timeout)

    async def close(self) -> None:
        """Close the socket and stop recording."""
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            await self._reader


def is_done(frame: Frame, prompt_id: str) -> bool:
    """Whether a frame is ``executing {node: null, prompt_id}``."""
    data = frame.data
    return (
        isinstance(data, dict)
        and data["type"] == "executing"
        and data["data"]["node"] is None
        and data["data"].get("prompt_id") == prompt_id
    )


class DoubleClient:
    """An in-process double with an HTTP session and the sockets opened through it, closed together."""

    def __init__(self, root: Path, **config: Any) -> None:
        self.root = root
        self._config = config
        self.url = ""
        self.session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._sockets: list[WsClient] = []

    @classmethod
    def attached(cls, url: str) -> DoubleClient:
        """A client of a server already running at ``url`` (a real ComfyUI, for comfy_double.record)."""
        client = cls(Path())
        client.url = url
        client.session = aiohttp.ClientSession()
        return client

    async def start(self) -> DoubleClient:
        """Serve the double and open the session."""
        self._runner, self.url = await start_double(self.root, **self._config)
        self.session = aiohttp.ClientSession()
        return self

    async def close(self) -> None:
        """Close sockets, session and server."""
        for client in self._sockets:
            await client.close()
        if self.session is not None:
            await self.session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def server(self) -> DoubleServer:
        """The double's internals, for assertions."""
        assert self._runner is not None, "not started"
        return self._runner.app[SERVER_KEY]

    async def ws(
        self, client_id: str | None = None, path: str = "/ws", feature_flags: dict[str, Any] | None = None
    ) -> WsClient:
        """A connected, recording websocket."""
        assert self.session is not None, "not started"
        client = await WsClient(self.session, self.url, client_id).connect(path, feature_flags)
        self._sockets.append(client)
        return client

    async def recorded_sockets(self, rec: dict[str, Any]) -> tuple[WsClient, WsClient | None]:
        """A scenario's client socket (sending its recorded feature_flags) and its observer, if recorded."""
        main = await self.ws(rec["client_id"], feature_flags=sent_feature_flags(rec["ws"]))
        observer = await self.ws(rec["ws_observer_client_id"]) if "ws_observer" in rec else None
        for client in (main, observer):
            if client is not None:
                await client.wait_quiet()
        return main, observer

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """(status, body): JSON when the reply is JSON, else text."""
        assert self.session is not None, "not started"
        async with self.session.request(method, self.url + path, **kwargs) as response:
            if response.content_type == "application/json":
                return response.status, await response.json()
            return response.status, await response.text()

    async def exchange(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """A request and its reply in the recordings' ``http[]`` form (status, headers, body, image_decoded)."""
        assert self.session is not None, "not started"
        async with self.session.request(method, self.url + path, **kwargs) as response:
            data = await response.read()
            entry: dict[str, Any] = {"path": path, "status": response.status, "headers": dict(response.headers)}
        if entry["headers"].get("Content-Type", "").startswith("application/json"):
            entry["body"] = json.loads(data)
        elif entry["headers"].get("Content-Type", "").startswith("image/"):
            entry["image_decoded"] = decode_image(data)
        else:
            entry["body_text"] = data.decode(errors="replace")
        return entry

    async def post_prompt(self, body: Any) -> tuple[int, Any]:
        """``POST /prompt`` with a JSON body."""
        return await self.request("POST", "/prompt", json=body)

    async def upload(self, filename: str, data: bytes, field: str = "image", **fields: str) -> tuple[int, Any]:
        """``POST /upload/image`` as multipart, the file under ``field``."""
        form = aiohttp.FormData()
        form.add_field(field, data, filename=filename, content_type="image/png")
        for name, value in fields.items():
            form.add_field(name, value)
        return await self.request("POST", "/upload/image", data=form)

    async def wait_history(self, prompt_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """Poll ``/history/{id}`` until the prompt is finished; returns its entry."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, body = await self.request("GET", f"/history/{prompt_id}")
            if body:
                return cast("dict[str, Any]", body[prompt_id])
            await asyncio.sleep(0.02)
        raise TimeoutError(f"prompt {prompt_id} not finished after {timeout}s")


MakeDouble = Callable[..., Awaitable[DoubleClient]]  # the ``make_double`` fixture: DoubleConfig knobs -> double
