"""One websocket to ComfyUI, registered before anything is submitted on it."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from agent.comfy.events import Event, parse_frame

OPEN_TIMEOUT = 10.0
MAX_FRAME_BYTES = 512 * 1024 * 1024  # SaveImageWebsocket sends whole images; a refused frame would drop the run


class SocketClosed(Exception):
    """The socket ended or could not be opened."""


class EventSocket:
    """Frames in, events out; every frame, even an ignored one, counts as a sign of life."""

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection
        self.last_frame_at = asyncio.get_running_loop().time()

    @classmethod
    async def open(cls, url: str, timeout: float = OPEN_TIMEOUT) -> EventSocket:
        """Connect and wait for ComfyUI's first `status` frame, which it sends once the socket is registered."""
        try:
            async with asyncio.timeout(timeout):
                connection = await connect(
                    url, proxy=None, compression=None, max_size=MAX_FRAME_BYTES,
                    open_timeout=timeout, ping_interval=10, ping_timeout=20, close_timeout=2,
                )
                try:
                    await connection.recv()
                except BaseException:
                    await connection.close()
                    raise
        except (OSError, TimeoutError, ConnectionClosed, InvalidHandshake, InvalidURI) as exc:
            raise SocketClosed(f"cannot open {url}: {exc.__class__.__name__}: {exc}") from exc
        return cls(connection)

    async def next_event(self) -> Event | None:
        """The next frame's event (None for frames no run needs); cancel-safe, so it can sit under a timeout."""
        try:
            frame = await self._connection.recv()
        except ConnectionClosed as exc:
            raise SocketClosed(f"socket closed: {exc}") from exc
        self.last_frame_at = asyncio.get_running_loop().time()
        return parse_frame(frame)

    async def close(self) -> None:
        """Close completely, so ComfyUI has dropped this clientId before the same id connects again."""
        await self._connection.close()
