"""One websocket to ComfyUI, registered before anything is submitted on it."""

from __future__ import annotations

import asyncio

import aiohttp

from agent.comfy.events import Event, parse_frame

OPEN_TIMEOUT = 10.0
MAX_FRAME_BYTES = 512 * 1024 * 1024  # SaveImageWebsocket sends whole images; a refused frame would drop the run
_ENDED = frozenset({aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED,
                    aiohttp.WSMsgType.ERROR})


class SocketClosed(Exception):
    """The socket ended or could not be opened."""


class EventSocket:
    """Frames in, events out; every frame, even an ignored one, counts as a sign of life."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._loop = asyncio.get_running_loop()
        self.last_frame_at = self._loop.time()

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, url: str, timeout: float = OPEN_TIMEOUT) -> EventSocket:
        """Connect, then wait for ComfyUI's first `status` frame, which it sends once the socket is registered."""
        try:
            async with asyncio.timeout(timeout):
                # No ping heartbeat: a silent socket is caught by the follower's stall check, and aiohttp's
                # heartbeat timers keep re-arming after close, holding every closed socket for seconds.
                socket = await session.ws_connect(url, max_msg_size=MAX_FRAME_BYTES, compress=0, autoping=True)
                first = await socket.receive()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SocketClosed(f"cannot open {url}: {exc.__class__.__name__}: {exc}") from exc
        if first.type in _ENDED:
            await socket.close()
            raise SocketClosed(f"{url} closed before ComfyUI greeted it")
        return cls(socket)

    async def next_event(self, wait: float) -> Event | None:
        """The next frame's event (None for frames no run needs); TimeoutError after `wait` seconds of silence,
        with nothing lost: the next call returns the next frame."""
        message = await self._socket.receive(timeout=wait)
        if message.type in _ENDED:
            raise SocketClosed(f"socket closed ({message.type.name}, code {self._socket.close_code})")
        self.last_frame_at = self._loop.time()
        return parse_frame(message.data) if message.type == aiohttp.WSMsgType.TEXT else None

    async def close(self) -> None:
        """Close completely, so ComfyUI has dropped this clientId before the same id connects again."""
        await self._socket.close()
