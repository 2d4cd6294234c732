"""Wire the agent together: settings → ComfyUI host, store, runner → routes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from agent.api import health, run, status
from agent.api.errors import json_errors
from agent.api.keys import HOST, RUNNER, SETTINGS, STORE
from agent.comfy.client import ComfyClient
from agent.comfy.host import make_host
from agent.config import Settings
from agent.inputs.prepare import InputPreparer
from agent.tasks.runner import Runner
from agent.tasks.store import open_store

COMFYUI_CONNECTIONS = 256


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Start ComfyUI without waiting for it: the agent's port opens at once and /readyz tells the rest."""
    settings = app[SETTINGS]
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=COMFYUI_CONNECTIONS), trust_env=False)
    client = ComfyClient(settings.comfyui_base_url, session)
    host = make_host(settings, client)
    store = open_store(settings.store_url, settings.task_ttl)
    inputs = InputPreparer(settings, client)
    app[HOST], app[STORE] = host, store
    app[RUNNER] = Runner(host, client, store, inputs, settings)
    await host.start()
    try:
        yield
    finally:
        await host.stop()
        await inputs.close()
        await store.close()
        await session.close()


def create_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[json_errors])
    app[SETTINGS] = settings
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_post("/api/run", run.run)
    app.router.add_get("/api/status", status.status)
    return app
