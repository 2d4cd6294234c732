"""The websocket side of ComfyUI's PromptServer: the ``sid -> socket`` registry and the ordered outbox.

Faithful on purpose: a message for a sid without a registered socket is dropped (never replayed), a
reconnect with a live clientId replaces the registration, and the older socket's close removes the
newer registration (the orphaned-socket trap).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any, cast

import aiohttp
from aiohttp import web

from .config import DoubleConfig
from .versions import VERSIONS

log = logging.getLogger("comfy_double")

Payload = dict[str, Any] | bytes  # a JSON message {"type", "data"} or a binary frame


class Hub:
    """Sockets by client id, their feature flags, and one publish loop that sends everything in order."""

    def __init__(self, config: DoubleConfig, queue_info: Callable[[], dict[str, Any]]) -> None:
        self._config = config
        self.queue_info = queue_info  # ``{"exec_info": {"queue_remaining": N}}``
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self._flags: dict[str, dict[str, Any]] = {}
        self._transports: dict[web.WebSocketResponse, asyncio.Transport] = {}
        self._stalled: set[web.WebSocketResponse] = set()
        self._outbox: asyncio.Queue[tuple[Payload, str | None]] = asyncio.Queue()
        self.client_id: str | None = None  # the client of the prompt being (or last) executed
        self.last_node_id: str | None = None  # the node executing now, for a reconnecting client

    def send(self, event: str, data: dict[str, Any], sid: str | None = None) -> None:
        """Queue a JSON message for one sid, or for every registered socket when sid is None."""
        self._outbox.put_nowait(({"type": event, "data": data}, sid))

    def send_frame(self, frame: bytes, sid: str | None) -> None:
        """Queue a binary frame, addressed like ``send``."""
        self._outbox.put_nowait((frame, sid))

    def queue_updated(self) -> None:
        """Broadcast ``status`` with the number of running plus pending prompts."""
        self.send("status", {"status": self.queue_info()})

    def supports_preview_metadata(self, sid: str | None) -> bool:
        """Whether the socket registered for sid negotiated ``supports_preview_metadata``."""
        return self._flags.get(sid or "", {}).get("supports_preview_metadata", False) is True

    async def publish_loop(self) -> None:
        """Deliver queued messages one at a time, in order, like PromptServer.publish_loop."""
        while True:
            payload, sid = await self._outbox.get()
            try:
                await self._deliver(payload, sid)
            finally:
                self._outbox.task_done()

    async def flush(self) -> None:
        """Wait until everything queued so far has been handed to the sockets."""
        await self._outbox.join()

    async def _deliver(self, payload: Payload, sid: str | None) -> None:
        if sid is None:
            targets = list(self.sockets.values())
        elif sid in self.sockets:
            targets = [self.sockets[sid]]
        else:
            return  # nobody registered for sid: the message is lost, as in ComfyUI
        for ws in targets:
            await self._send_one(ws, payload)

    async def _send_one(self, ws: web.WebSocketResponse, payload: Payload) -> None:
        if self._config.ws_send_delay > 0:
            await asyncio.sleep(self._config.ws_send_delay)
        if ws in self._stalled:
            return
        try:
            if isinstance(payload, bytes):
                await ws.send_bytes(payload)
            else:
                await ws.send_json(payload)
        except (aiohttp.ClientError, ConnectionError) as err:
            log.warning("send error: %s", err)

    def drop(self, sid: str | None) -> None:
        """Abort the transport of the socket registered for sid, with no close frame."""
        if sid in self.sockets:
            self._transports[self.sockets[sid]].abort()

    def drop_all(self) -> None:
        """Abort every open socket, registered or orphaned."""
        for transport in list(self._transports.values()):
            transport.abort()

    def stall(self, sid: str | None) -> None:
        """Send nothing more to sid's current socket; it stays open and keeps answering pings."""
        if sid in self.sockets:
            self._stalled.add(self.sockets[sid])

    def stall_all(self) -> None:
        """Stall every open socket."""
        self._stalled.update(self._transports)

    async def close_all(self) -> None:
        """Close every socket (server shutdown)."""
        for ws in list(self._transports):
            await ws.close(code=aiohttp.WSCloseCode.GOING_AWAY)

    async def websocket_handler(self, request: web.Request) -> web.WebSocketResponse:
        """``GET /ws?clientId=X``: register, greet with ``status``, serve ``feature_flags``."""
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        sid = request.rel_url.query.get("clientId", "")
        if sid:
            self.sockets.pop(sid, None)
        else:
            sid = uuid.uuid4().hex
        self.sockets[sid] = ws
        self._flags[sid] = {}
        self._transports[ws] = cast(asyncio.Transport, request.transport)  # set while the socket is open
        try:
            await self._greet(sid)
            await self._read(ws, sid)
        finally:
            self.sockets.pop(sid, None)  # may remove a newer socket's registration: that is ComfyUI's trap
            self._flags.pop(sid, None)
            self._transports.pop(ws, None)
            self._stalled.discard(ws)
        return ws

    async def _greet(self, sid: str) -> None:
        await self._deliver({"type": "status", "data": {"status": self.queue_info(), "sid": sid}}, sid)
        if self.client_id == sid and self.last_node_id is not None:
            await self._deliver({"type": "executing", "data": {"node": self.last_node_id}}, sid)

    async def _read(self, ws: web.WebSocketResponse, sid: str) -> None:
        first_message = True
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            with contextlib.suppress(ValueError, AttributeError):  # non-JSON, or JSON that is not an object
                data = json.loads(msg.data)
                if first_message and data.get("type") == "feature_flags":
                    self._flags[sid] = data.get("data", {})
                    features = dict(VERSIONS[self._config.version].features)
                    await self._deliver({"type": "feature_flags", "data": features}, sid)
                first_message = False
