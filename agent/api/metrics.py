"""GET /metrics: Prometheus's text format, behind the token unless `METRICS_PUBLIC=true`."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from agent.api.services import Services


async def metrics(request: web.Request, services: Services) -> web.Response:
    response = web.Response(body=services.metrics.exposition())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
