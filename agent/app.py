"""Wire the agent together: settings → ComfyUI host and connection, store, run service and its subscribers →
routes; or, for a gateway, store and GPU function → routes. A new subscriber of the runs is added here and
nowhere else."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
from aiohttp import web

from agent.api import contract, events, handoff, health, lifecycle, page, proxy, run, status, tasks, workflows
from agent.api import metrics as metrics_route
from agent.api.errors import json_errors
from agent.api.keys import (
    BUCKETS,
    CHOICES,
    HANDOFF,
    HOST,
    LOADERS,
    METRICS,
    POLLS,
    PROXY_SESSION,
    RUNS,
    SETTINGS,
    STORE,
    STREAM_SLOTS,
    WORKER,
    WORKFLOWS,
)
from agent.api.polls import RecentPolls
from agent.api.security import cors, require_token
from agent.buckets.clients import Buckets
from agent.buckets.location import parse_location
from agent.comfy.client import ComfyClient, connection_pool
from agent.comfy.connection import EventConnection
from agent.comfy.host import ComfyHost, make_host
from agent.comfy.outputs import OutputFiles
from agent.config import Settings
from agent.errors import AgentError, ComfyUIUnavailable
from agent.gateway.handoff import Handoff
from agent.gateway.worker import WorkerFunction
from agent.inputs.prepare import InputPreparer
from agent.inputs.slots import Loaders
from agent.logs import log_event
from agent.metrics import Metrics
from agent.metrics.runs import RunMetrics
from agent.metrics.store import MeteredStore
from agent.outputs.delivery import Outputs
from agent.outputs.sweep import sweep_outputs
from agent.runs.events import RunEvents
from agent.runs.run import Comfy
from agent.runs.service import RunService
from agent.runs.writer import StoreWriter
from agent.stores import open_store
from agent.stores.base import TaskStore
from agent.streams.publisher import EventPublisher
from agent.streams.slots import StreamSlots
from agent.webhooks.sender import WebhookSender
from agent.workflows.choices import Choices, StoredChoices, publish_choices
from agent.workflows.library import Library

logger = logging.getLogger("agent")

# ComfyUI answers HTTP from one process and one event loop: more connections than this only wait inside it,
# while each one held costs a socket on both sides.
COMFYUI_CONNECTIONS = 64
# How often expired tasks and outputs are removed (from stores that do not expire them by themselves), and
# ComfyUI's model lists are published again for gateways (a model copied to the NAS shows up there within it).
REPEAT_SECONDS = 600


def instance_id() -> str:
    """Names the task owner in the store: which machine, which process."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def _repeat(what: str, work: Callable[[], Awaitable[int]], at_start: bool) -> None:
    """`work` every REPEAT_SECONDS, first at once when `at_start` (an instance that lives only minutes at a
    time, on FC, must do it too); a failure is logged and the next round tries again."""
    if not at_start:
        await asyncio.sleep(REPEAT_SECONDS)
    while True:
        try:
            count = await work()
        except (AgentError, OSError) as exc:
            log_event(logger, f"{what}_failed", level=logging.WARNING, error=exc)
        else:
            log_event(logger, what, count=count)
        await asyncio.sleep(REPEAT_SECONDS)


async def _publish_choices(host: ComfyHost, client: ComfyClient, store: TaskStore, wait: float) -> int:
    """ComfyUI's list inputs into the store, for gateways, once it answers."""
    if not await host.wait_ready(wait):
        raise ComfyUIUnavailable(f"ComfyUI did not answer within {wait:g} s")
    return await publish_choices(client, store)


def _passing_session() -> aiohttp.ClientSession:
    """For requests passed on as they came: no pool limit, no proxy from the environment, bodies left encoded,
    no cookies kept between callers."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False, auto_decompress=False,
                                 cookie_jar=aiohttp.DummyCookieJar())


def open_outputs(settings: Settings, buckets: Buckets) -> Outputs | None:
    """The output store, when one is configured."""
    if settings.output_store is None:
        return None
    location = parse_location(settings.output_store)
    return Outputs(buckets.bucket(location.cloud, location.bucket), location, settings.keep_local_outputs)


async def _resources(app: web.Application) -> AsyncIterator[None]:
    """Start ComfyUI without waiting for it: the agent's port opens at once and /readyz tells the rest."""
    settings = app[SETTINGS]
    session = connection_pool(COMFYUI_CONNECTIONS)
    proxy_session = _passing_session()
    client = ComfyClient(settings.comfyui_base_url, session, COMFYUI_CONNECTIONS)
    host = make_host(settings, client)
    connection = EventConnection(settings.comfyui_base_url, settings.ws_stall_timeout, client.queue)
    metrics = app[METRICS]
    store = MeteredStore(open_store(settings.store_url, settings.task_ttl, settings.stale_after), metrics)
    buckets = Buckets.from_settings(settings)
    inputs = InputPreparer(settings, client, buckets)
    writer = StoreWriter(store, settings.task_heartbeat)
    webhooks = WebhookSender(settings, metrics)
    app[CHOICES] = Choices(client)
    comfy = Comfy(host, client, connection, inputs, OutputFiles(client, settings.comfyui_folders))
    outputs = open_outputs(settings, buckets)
    runs = RunService(comfy, store, RunEvents([RunMetrics(metrics), EventPublisher(store), writer], (webhooks,)),
                      instance_id=instance_id(), run_timeout=settings.run_timeout,
                      max_active=settings.max_active_runs, max_waiting=settings.max_waiting_runs, outputs=outputs)
    app[HOST], app[STORE], app[RUNS], app[PROXY_SESSION], app[BUCKETS] = host, store, runs, proxy_session, buckets
    metrics.watch(lambda: host.ready, lambda: host.restarts, lambda: runs.active_runs + runs.waiting_runs)
    await host.start()
    sweepers = [asyncio.ensure_future(_repeat("store.sweep", store.sweep, at_start=False)),
                asyncio.ensure_future(_repeat("choices.publish", lambda: _publish_choices(
                    host, client, store, settings.comfyui_start_timeout), at_start=True))]
    if not settings.keep_local_outputs:
        folders = list(settings.comfyui_folders.values())
        sweepers.append(asyncio.ensure_future(_repeat("outputs.sweep", lambda: asyncio.to_thread(
            sweep_outputs, folders, settings.task_ttl, time.time()), at_start=True)))
    try:
        yield
    finally:
        for sweeper in sweepers:
            sweeper.cancel()
        await host.stop()
        await runs.close()
        await writer.close()
        await webhooks.close()
        await connection.close()
        await inputs.close()
        await store.close()
        await session.close()
        await proxy_session.close()


async def _gateway_resources(app: web.Application) -> AsyncIterator[None]:
    """A gateway's store, and the GPU function it hands runs to; no ComfyUI."""
    settings = app[SETTINGS]
    assert settings.worker_url is not None  # load_settings refuses a gateway without one
    store = MeteredStore(open_store(settings.store_url, settings.task_ttl, settings.stale_after), app[METRICS])
    session = _passing_session()
    # a held run may take RUN_TIMEOUT, and its inputs and outputs their time around it
    worker = WorkerFunction(settings.worker_url, settings.token_for_worker, session, settings.run_timeout + 600)
    app[STORE], app[WORKER], app[CHOICES] = store, worker, Choices(StoredChoices(store))
    app[HANDOFF] = Handoff(store, worker, app[METRICS], max_age=settings.async_max_event_age,
                           instance_id=instance_id())
    sweeper = asyncio.ensure_future(_repeat("store.sweep", store.sweep, at_start=False))
    try:
        yield
    finally:
        sweeper.cancel()
        await store.close()
        await session.close()


def _application(settings: Settings) -> web.Application:
    """What a worker and a gateway share: settings, metrics, stream slots, workflows, and the routes that read
    tasks from the store, the page and the contract."""
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[cors, require_token, json_errors])
    app[SETTINGS] = settings
    app[METRICS] = metrics = Metrics()
    app[STREAM_SLOTS] = StreamSlots(settings.max_event_streams, metrics.streams)
    app[WORKFLOWS] = Library(settings.workflows_paths)
    app[POLLS] = RecentPolls()
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/metrics", metrics_route.metrics)
    app.router.add_get("/api/status", status.status)
    app.router.add_get("/api/tasks/{task_id}", tasks.get_task)
    app.router.add_get("/api/tasks/{task_id}/events", events.task_events)
    page.add_routes(app)
    contract.add_routes(app)
    return app


def create_app(settings: Settings) -> web.Application:
    if settings.gateway:
        return create_gateway(settings)
    app = _application(settings)
    app.cleanup_ctx.append(_resources)
    app.router.add_get("/livez", health.livez)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_post("/api/run", run.run)
    app.router.add_post("/api/tasks/{task_id}/cancel", tasks.cancel_task)
    app.router.add_post("/initialize", lifecycle.initialize)
    app.router.add_get("/pre-stop", lifecycle.pre_stop)
    workflows.add_routes(app)
    app.router.add_route("*", "/{tail:.*}", proxy.proxy)
    return app


def create_gateway(settings: Settings) -> web.Application:
    """No ComfyUI, no proxy to one: every other path is a 404."""
    app = _application(settings)
    app[LOADERS] = Loaders(settings)
    app.cleanup_ctx.append(_gateway_resources)
    app.router.add_post("/api/run", handoff.run)
    app.router.add_post("/api/tasks/{task_id}/cancel", handoff.cancel_task)
    workflows.add_routes(app, run=handoff.run_workflow)
    return app
