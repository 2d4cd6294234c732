"""A round-robin HTTP proxy over several agents, like FC's front end: any request may land on any instance."""

from __future__ import annotations

import itertools

import aiohttp
from aiohttp import web

HOP_BY_HOP = {"host", "connection", "content-length", "transfer-encoding", "keep-alive"}


class RoundRobin:
    """Each request goes to the next backend; a backend that refuses connections is skipped (as a health check
    would), so a killed instance drops out. The chosen backend's index comes back in `X-Backend`."""

    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._turn = itertools.cycle(range(len(backends)))
        self._session: aiohttp.ClientSession | None = None

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.forward)
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _: web.Application) -> None:
        if self._session is not None:
            await self._session.close()

    async def forward(self, request: web.Request) -> web.Response:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120))
        body = await request.read()
        headers = {key: value for key, value in request.headers.items() if key.lower() not in HOP_BY_HOP}
        for _ in self.backends:
            index = next(self._turn)
            try:
                async with self._session.request(request.method, self.backends[index] + request.path_qs,
                                                 headers=headers, data=body) as reply:
                    data = await reply.read()
                    kept = {key: value for key, value in reply.headers.items() if key.lower() not in HOP_BY_HOP}
                    return web.Response(status=reply.status, body=data, headers={**kept, "X-Backend": str(index)})
            except aiohttp.ClientConnectionError:
                continue
        return web.json_response({"message": "NoBackend", "error": "no agent answered"}, status=502)
