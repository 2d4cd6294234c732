"""What each app's handlers reach, as typed containers instead of loose keys on the application: `Services` is
what every app has (a gateway has just that), `WorkerServices` what an instance beside ComfyUI adds. The
wiring (agent/app.py) builds an app's container at startup and keeps it under that app's one key; a handler
names the container it needs in its signature and `route` binds it to a key, so a worker's handler given to a
gateway is a type error, not a failure at run time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiohttp
from aiohttp import web

from agent.access.book import Keys
from agent.access.limits import Limiter
from agent.api.polls import RecentPolls
from agent.api.statuses import Handler
from agent.api.warmup import Warmup
from agent.assets.blobs import Blobs
from agent.comfy.host import ComfyHost
from agent.config import Settings
from agent.front.base import Front
from agent.metrics import Metrics
from agent.models.library import Models
from agent.models.pulls import Pulls
from agent.runs.service import RunService
from agent.stores import Stores
from agent.streams.slots import StreamSlots
from agent.workflows.catalog import Catalog
from agent.workflows.library import Library


@dataclass(frozen=True)
class Services:
    settings: Settings
    metrics: Metrics
    stream_slots: StreamSlots
    polls: RecentPolls
    catalog: Catalog
    workflows: Library
    stores: Stores
    blobs: Blobs
    front: Front
    models: Models
    pulls: Pulls
    keys: Keys
    limiter: Limiter


@dataclass(frozen=True)
class WorkerServices(Services):
    host: ComfyHost
    runs: RunService
    proxy_session: aiohttp.ClientSession
    warmup: Warmup


S = TypeVar("S", bound=Services)

GATEWAY = web.AppKey("gateway", Services)
WORKER = web.AppKey("worker", WorkerServices)


def route(key: web.AppKey[S], handler: Callable[[web.Request, S], Awaitable[web.StreamResponse]]) -> Handler:
    """`handler` as aiohttp calls it, given the container its app keeps under `key`."""
    async def bound(request: web.Request) -> web.StreamResponse:
        return await handler(request, request.app[key])

    return bound
