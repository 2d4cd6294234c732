"""Forward ComfyUI's output line by line without ever making ComfyUI wait on us.

The pipe is drained in fixed-size chunks, never with readline(): a 10 MB line or invalid UTF-8 must not stall
the reader, because a full pipe blocks ComfyUI's own print() and with it the whole server. A carriage return
starts its line again, as on a terminal: a progress bar (tqdm's, a sampler's steps) redrawn a hundred times is one
line, as it last stood. ComfyUI prints its messages without their level, so `Levels` tells a traceback (an error)
and a Python warning from the rest.
"""

from __future__ import annotations

import asyncio
import logging
import re
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
        if piece and self._head.endswith(b"\r"):  # a carriage return not followed by the line's end
            self._restart()
        redrawn = piece.rfind(b"\r", 0, len(piece) - 1)
        if redrawn != -1:
            self._restart()
            piece = piece[redrawn + 1:]
        room = self._max - len(self._head)
        self._head += piece[:room]
        self._dropped += max(0, len(piece) - room)

    def _restart(self) -> None:
        self._head.clear()
        self._dropped = 0

    def _flush(self) -> None:
        text = self._head.decode("utf-8", "replace").rstrip("\r")
        if self._dropped:
            text += f" ...({self._dropped} more bytes)"
        self._restart()
        self._emit(text)


_WARNING = re.compile(r"^(\S+:\d+: )?\w*Warning: |^WARNING\b|^\[WARNING\]")
_ERROR = re.compile(r"^(!!! Exception during processing !!!|ERROR\b|\[ERROR\])")
_TRACEBACK = "Traceback (most recent call last):"


class Levels:
    """The level of each of ComfyUI's lines, in order: a traceback is an error from its first line to the
    exception that ends it; Python's warnings are warnings; the rest is information."""

    def __init__(self) -> None:
        self._in_traceback = False

    def of(self, line: str) -> int:
        if line.startswith(_TRACEBACK):
            self._in_traceback = True
            return logging.ERROR
        if self._in_traceback:
            self._in_traceback = line[:1].isspace()  # the unindented line is the exception itself, its last
            return logging.ERROR
        if _ERROR.match(line):
            return logging.ERROR
        return logging.WARNING if _WARNING.match(line) else logging.INFO


async def pump(stream: asyncio.StreamReader, emit: Callable[[str], None]) -> None:
    splitter = LineSplitter(emit)
    while chunk := await stream.read(CHUNK_BYTES):
        splitter.feed(chunk)
    splitter.close()
