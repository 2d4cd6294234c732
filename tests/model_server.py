"""A local web server of model files for the models-by-URL tests: Range requests as Hugging Face's and Civitai's
CDNs answer them, and the ways a model download goes wrong (slow, broken off, missing, private, a web page)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import struct
from collections import Counter
from typing import Any

from aiohttp import web

_RANGE = re.compile(r"bytes=(\d+)-")


def safetensors(size: int, seed: int = 0) -> bytes:
    """A safetensors file of about `size` bytes: its header as the format has it, then one U8 tensor."""
    data_size = max(1, size - 64)
    header = json.dumps({"weight": {"dtype": "U8", "shape": [data_size], "data_offsets": [0, data_size]}}).encode()
    header += b" " * (-len(header) % 8)
    body = bytes((seed + index) % 251 for index in range(min(data_size, 4096)))
    return struct.pack("<Q", len(header)) + header + (body * (data_size // len(body) + 1))[:data_size]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class ModelServer:
    """Routes (NAME a file in `files`): /m/NAME (with Range), /norange/NAME (Range ignored: always 200),
    /break/NAME (sends `break_after` bytes of the whole, then drops the connection, once per `breaks`),
    /hold/NAME (waits for `release` before the body), /dl/ID (a Civitai-like link: the name comes in
    Content-Disposition), /private/NAME (401 without `Bearer secret`), /to?url=X (one redirect), /missing (404),
    /page/NAME (200, an HTML page), /stall/NAME (a first part, then nothing until `release`), /busy/NAME (503)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.hits: Counter[str] = Counter()
        self.ranges: list[str | None] = []
        self.authorizations: list[tuple[str, str | None]] = []
        self.break_after = 0
        self.breaks = 1
        self.release = asyncio.Event()
        self.held = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._count])
        for prefix, handler in (("m", self.model), ("norange", self.whole), ("break", self.broken),
                                ("hold", self.hold), ("private", self.private), ("page", self.page),
                                ("stall", self.stall), ("busy", self.busy)):
            app.router.add_get(f"/{prefix}/{{name}}", handler)
        app.router.add_get("/dl/{name}", self.download_link)
        app.router.add_get("/to", self.to)
        return app

    @web.middleware
    async def _count(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.ranges.append(request.headers.get("Range"))
        self.authorizations.append((request.host, request.headers.get("Authorization")))
        response: web.StreamResponse = await handler(request)
        return response

    def _file(self, request: web.Request) -> bytes:
        name = request.match_info["name"]
        if name not in self.files:
            raise web.HTTPNotFound(text="no such file")
        return self.files[name]

    async def model(self, request: web.Request) -> web.StreamResponse:
        return await self._send(request, self._file(request))

    async def whole(self, request: web.Request) -> web.Response:
        return web.Response(body=self._file(request), content_type="application/octet-stream")

    async def _send(self, request: web.Request, data: bytes, cut: int | None = None,
                    headers: dict[str, str] | None = None) -> web.StreamResponse:
        match = _RANGE.fullmatch(request.headers.get("Range", ""))
        start = int(match.group(1)) if match else 0
        if start >= len(data) and match:
            raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{len(data)}"})
        response = web.StreamResponse(status=206 if match else 200, headers=headers)
        response.content_type = "application/octet-stream"
        response.content_length = len(data) - start
        if match:
            response.headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        response.headers["Accept-Ranges"] = "bytes"
        await response.prepare(request)
        end = len(data) if cut is None else max(start, cut)
        for offset in range(start, end, 1 << 16):
            await response.write(data[offset:min(end, offset + (1 << 16))])
        if cut is not None and end < len(data):
            assert request.transport is not None
            request.transport.close()  # broken off mid-body, as a dropped connection
            return response
        await response.write_eof()
        return response

    async def broken(self, request: web.Request) -> web.StreamResponse:
        data = self._file(request)
        if self.breaks > 0:
            self.breaks -= 1
            return await self._send(request, data, cut=self.break_after)
        return await self._send(request, data)

    async def hold(self, request: web.Request) -> web.StreamResponse:
        data = self._file(request)
        self.held.set()
        await self.release.wait()
        return await self._send(request, data)

    async def stall(self, request: web.Request) -> web.StreamResponse:
        """Sends a first part, then nothing until `release` (a CDN that stalls)."""
        data = self._file(request)
        response = web.StreamResponse(headers={"Content-Length": str(len(data))})
        await response.prepare(request)
        await response.write(data[:100_000])
        await self.release.wait()
        await response.write(data[100_000:])
        return response

    async def busy(self, request: web.Request) -> web.Response:
        raise web.HTTPServiceUnavailable(text="try later")

    async def private(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != "Bearer secret":
            raise web.HTTPUnauthorized(text="a token is required")
        return await self._send(request, self._file(request))

    async def download_link(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        data = self._file(request)
        return await self._send(request, data, headers={
            "Content-Disposition": f'attachment; filename="{name}-served.safetensors"'})

    async def to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["url"])

    async def page(self, request: web.Request) -> web.Response:
        return web.Response(text="<!doctype html><title>Sign in</title><form>...</form>" * 10,
                            content_type="text/html")
