"""A local web server of input files for the URL-input tests: good files, and every way a URL can go wrong."""

from __future__ import annotations

import asyncio
import io
import wave
from collections import Counter
from typing import Any

from aiohttp import web
from PIL import Image


def png(color: tuple[int, int, int], size: tuple[int, int] = (8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def wav(frames: int = 800, sample: bytes = b"\0\0") -> bytes:
    """A short mono 16-bit WAV: audio a sniffer recognises."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(sample * frames)
    return buffer.getvalue()


class FilesServer:
    """Routes: /png/R/G/B, /big/SIZE, /hop/N (N redirects, then a PNG), /to?url=X (one redirect to X),
    /slow, /drip, /endless, /missing, /html, /cookie (sets one, then redirects to /headers)."""

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.hits: Counter[str] = Counter()
        self.headers: list[dict[str, str]] = []

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        app.router.add_get("/png/{r}/{g}/{b}", self.png)
        app.router.add_get("/big/{size}", self.big)
        app.router.add_get("/hop/{left}", self.hop)
        app.router.add_get("/to", self.to)
        app.router.add_get("/slow", self.slow)
        app.router.add_get("/drip", self.drip)
        app.router.add_get("/endless", self.endless)
        app.router.add_get("/html", self.html)
        app.router.add_get("/cookie", self.cookie)
        app.router.add_get("/headers", self.png_with_headers)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.headers.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow server on purpose (the `delay` knob): it orders nothing
        response: web.StreamResponse = await handler(request)
        return response

    async def png(self, request: web.Request) -> web.Response:
        color = tuple(int(request.match_info[key]) for key in "rgb")
        return web.Response(body=png((color[0], color[1], color[2])), content_type="image/png")

    async def big(self, request: web.Request) -> web.Response:
        size = int(request.match_info["size"])
        head = png((1, 2, 3))
        return web.Response(body=head + b"\0" * max(0, size - len(head)), content_type="image/png")

    async def hop(self, request: web.Request) -> web.Response:
        left = int(request.match_info["left"])
        raise web.HTTPFound(f"/hop/{left - 1}" if left > 1 else "/png/10/20/30")

    async def to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def slow(self, request: web.Request) -> web.Response:
        await asyncio.sleep(30)  # a server that never answers in time, on purpose: the fetch's timeout must end it
        return web.Response(body=png((0, 0, 0)))

    async def drip(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await response.write(png((0, 0, 0))[:8])
        for _ in range(300):
            await asyncio.sleep(0.1)  # a body that trickles on purpose, a byte at a time: the total timeout must end it
            await response.write(b"\0")
        return response

    async def endless(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "image/png"})
        await response.prepare(request)
        await response.write(png((0, 0, 0)))
        chunk = b"\0" * 65536
        for _ in range(100_000):
            await response.write(chunk)
        return response

    async def html(self, request: web.Request) -> web.Response:
        return web.Response(text="<html><body>not a picture</body></html>", content_type="image/png")

    async def cookie(self, request: web.Request) -> web.Response:
        response = web.HTTPFound("/headers")
        response.set_cookie("session", "secret-cookie")
        raise response

    async def png_with_headers(self, request: web.Request) -> web.Response:
        return web.Response(body=png((5, 6, 7)), content_type="image/png")
