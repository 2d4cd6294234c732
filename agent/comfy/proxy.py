"""Everything the agent does not answer itself goes through to ComfyUI, HTTP and websocket, streamed both
ways: its web UI and native API work through the agent's URL, and a large file never sits in memory."""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp
from aiohttp import web

HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                        "transfer-encoding", "upgrade", "host", "content-length"})
NOT_FORWARDED = frozenset({"authorization", "cookie"})  # the agent's credentials are not ComfyUI's business
INLINE_TYPES = ("image/", "video/", "audio/")
CHUNK = 256 * 1024
TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=5, sock_read=None)


class ProxyUnreachable(Exception):
    """ComfyUI did not take the connection."""


def _request_headers(request: web.Request) -> dict[str, str]:
    return {name: value for name, value in request.headers.items()
            if name.lower() not in HOP_BY_HOP | NOT_FORWARDED and not name.lower().startswith("sec-websocket")}


def _response_headers(upstream: aiohttp.ClientResponse) -> dict[str, str]:
    headers = {name: value for name, value in upstream.headers.items() if name.lower() not in HOP_BY_HOP}
    if upstream.content_type.startswith(INLINE_TYPES):
        disposition = upstream.headers.get("Content-Disposition", "")
        filename = disposition.partition("filename=")[2]
        headers["Content-Disposition"] = f"inline; filename={filename}" if filename else "inline"
    return headers


async def forward_http(request: web.Request, base_url: str, session: aiohttp.ClientSession) -> web.StreamResponse:
    data = request.content if request.body_exists else None
    try:
        upstream = await session.request(request.method, base_url + request.path_qs, headers=_request_headers(request),
                                         data=data, allow_redirects=False, timeout=TIMEOUT)
    except aiohttp.ClientConnectionError as exc:
        raise ProxyUnreachable(str(exc)) from exc
    async with upstream:
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=_response_headers(upstream))
        if upstream.headers.get("Content-Length"):
            response.content_length = int(upstream.headers["Content-Length"])
        await response.prepare(request)
        async for chunk in upstream.content.iter_chunked(CHUNK):
            await response.write(chunk)
        await response.write_eof()
    return response


async def _pump(source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
                target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse) -> None:
    async for message in source:
        if message.type == aiohttp.WSMsgType.TEXT:
            await target.send_str(message.data)
        elif message.type == aiohttp.WSMsgType.BINARY:
            await target.send_bytes(message.data)
        else:
            break


async def forward_websocket(request: web.Request, base_url: str,
                            session: aiohttp.ClientSession) -> web.WebSocketResponse:
    url = base_url.replace("http", "ws", 1) + request.path_qs
    try:
        upstream = await session.ws_connect(url, headers=_request_headers(request), autoping=True, max_msg_size=0,
                                            timeout=aiohttp.ClientWSTimeout(ws_close=5))
    except aiohttp.ClientError as exc:
        raise ProxyUnreachable(str(exc)) from exc
    client = web.WebSocketResponse(max_msg_size=0, autoping=True)
    await client.prepare(request)
    async with upstream:
        pumps = [asyncio.ensure_future(_pump(client, upstream)), asyncio.ensure_future(_pump(upstream, client))]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pumps, return_exceptions=True)
        await upstream.close()
    await client.close()
    return client
