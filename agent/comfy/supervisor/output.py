"""Forward ComfyUI's output line by line without ever making ComfyUI wait on us.

The pipe is drained in fixed-size chunks, never with readline(): a 10 MB line or invalid UTF-8 must not stall
the reader, because a full pipe blocks ComfyUI's own print() and with it the whole server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

CHUNK_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024


class LineSplitter:
    """Bytes in, bounded text lines out; the part of an over-long line past the cap is counted, not kept."""

    def __init__(self, emit: Callable[[str], None], max_line: int = MAX_LINE_BYTES) -> None:
        self._emit = emit
        self._max = max_line
        self._head = bytearray()
        self._dropped = 0

    def feed(self, chunk: bytes) -> None:
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            self._keep(chunk[start:end])
            self._flush()
            start = end + 1
        self._keep(chunk[start:])

    def close(self) -> None:
        if self._head or self._dropped:
            self._flush()

    def _keep(self, piece: bytes) -> None:
        room = self._max - len(self._head)
        self._head += piece[:room]
        self._dropped += max(0, len(piece) - room)

    def _flush(self) -> None:
        text = self._head.decode("utf-8", "replace").rstrip("\r")
        if self._dropped:
            text += f" ...({self._dropped} more bytes)"
        self._head.clear()
        self._dropped = 0
        self._emit(text)


async def pump(stream: asyncio.StreamReader, emit: Callable[[str], None]) -> None:
    splitter = LineSplitter(emit)
    while chunk := await stream.read(CHUNK_BYTES):
        splitter.feed(chunk)
    splitter.close()
