"""Wire the agent together: settings → ComfyUI host and connection, store, run service and its subscribers →
routes; or, for a gateway, store and GPU function → routes. A new subscriber of the runs is added here and
nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from aiohttp import web

from agent.access.book import Keys
from agent.access.limits import Leases, Limiter
from agent.api import contract, health, lifecycle, page, proxy, run, status, streams, tasks, workflows
from agent.api import keys as keys_api
from agent.api import metrics as metrics_route
from agent.api import models as models_api
from agent.api import usage as usage_api
from agent.api.polls import RecentPolls
from agent.api.replies import Warmup as Warmed
from agent.api.security import authenticate, cors, needs
from agent.api.services import GATEWAY, WORKER, S, Services, WorkerServices, route
from agent.api.statuses import json_errors
from agent.api.v2 import routes as v2_routes
from agent.api.v2.errors import envelope_response
from agent.api.warmup import Warmup
from agent.assets.blobs import Blobs, BucketBlobs, FolderBlobs
from agent.buckets.clients import Buckets
from agent.buckets.location import parse_location
from agent.comfy.client import ComfyClient, connection_pool
from agent.comfy.connection import EventConnection
from agent.comfy.host import ComfyHost, make_host
from agent.comfy.outputs import ComfyFiles
from agent.config import Settings
from agent.errors import AgentError, ComfyUIUnavailable
from agent.front.handoff import HandoffFront
from agent.front.local import LocalFront
from agent.gateway.handoff import Handoff
from agent.gateway.worker import WorkerFunction
from agent.inputs.prepare import InputPreparer
from agent.inputs.slots import Loaders
from agent.logs import log_event
from agent.metrics import Metrics
from agent.metrics.coldstart import ColdStart
from agent.metrics.runs import RunMetrics
from agent.metrics.store import metered
from agent.models.library import Models
from agent.models.pulls import Pulls
from agent.outputs.delivery import OutputStore
from agent.outputs.sweep import sweep_outputs
from agent.runs.events import RunEvents
from agent.runs.run import ComfyParts
from agent.runs.service import RunService
from agent.runs.writer import StoreWriter
from agent.stores import Stores, open_store
from agent.stores.keys import Scope
from agent.stores.shared import SharedDocuments
from agent.streams.publisher import EventPublisher
from agent.streams.slots import StreamSlots
from agent.usage.writer import UsageWriter
from agent.webhooks.sender import WebhookSender
from agent.workflows.catalog import Catalog, LiveCatalog, StoredCatalog, publish_catalog
from agent.workflows.files import WorkflowFiles
from agent.workflows.library import Library

logger = logging.getLogger("agent")

# ComfyUI answers HTTP from one process and one event loop: more connections than this only wait inside it,
# while each one held costs a socket on both sides.
COMFYUI_CONNECTIONS = 64
# How often expired tasks and outputs are removed (from stores that do not expire them by themselves), and
# ComfyUI's node catalog is published again for gateways (a model copied to the NAS shows up there within it).
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


async def _publish_catalog(host: ComfyHost, client: ComfyClient, shared: SharedDocuments, wait: float) -> int:
    """ComfyUI's node catalog into the store, for gateways, once it answers."""
    if not await host.wait_ready(wait):
        raise ComfyUIUnavailable(f"ComfyUI did not answer within {wait:g} s")
    return await publish_catalog(client, shared)


def _library(settings: Settings, catalog: Catalog, stores: Stores) -> Library:
    return Library(WorkflowFiles(settings.workflows_paths, catalog), stores.workflows)


def _passing_session() -> aiohttp.ClientSession:
    """For requests passed on as they came: no pool limit, no proxy from the environment, bodies left encoded,
    no cookies kept between callers."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), trust_env=False, auto_decompress=False,
                                 cookie_jar=aiohttp.DummyCookieJar())


def open_outputs(settings: Settings, buckets: Buckets) -> OutputStore | None:
    """The output store, when one is configured."""
    if settings.output_store is None:
        return None
    location = parse_location(settings.output_store)
    return OutputStore(buckets.bucket(location.cloud, location.bucket), location, settings.keep_local_outputs)


def open_blobs(settings: Settings, buckets: Buckets) -> Blobs:
    """Where uploaded assets keep their bytes: the output store's bucket, else `ASSETS_DIR`."""
    if settings.output_store is None:
        return FolderBlobs(settings.assets_folder)
    location = parse_location(settings.output_store)
    return BucketBlobs(buckets.bucket(location.cloud, location.bucket), location)


@dataclass(frozen=True)
class _Basics:
    """What an app holds from its creation, before its startup opens the rest."""

    settings: Settings
    metrics: Metrics
    stream_slots: StreamSlots
    polls: RecentPolls

    @classmethod
    def of(cls, settings: Settings) -> _Basics:
        metrics = Metrics()
        return cls(settings, metrics, StreamSlots(settings.max_event_streams, metrics.streams), RecentPolls())


def _repeating(stack: contextlib.AsyncExitStack, what: str, work: Callable[[], Awaitable[int]],
               at_start: bool) -> None:
    """`work` every REPEAT_SECONDS for as long as the app runs."""
    stack.callback(asyncio.ensure_future(_repeat(what, work, at_start)).cancel)


def _access(settings: Settings, stores: Stores) -> tuple[Keys, Limiter]:
    """The keys' book and their limits. A place among a key's runs at once that nobody gave back (its
    instance was killed mid-run) lapses once the run could not be going any more: its wait in FC's queue (a
    gateway's hand-off) and its whole run."""
    lease_life = settings.run_timeout + settings.async_max_event_age + 600
    return (Keys(stores.api_keys, settings.agent_token, settings.key_cache_seconds),
            Limiter(stores.meters, stores.usage, lease_life))


def _open_stores(stack: contextlib.AsyncExitStack, basics: _Basics) -> Stores:
    settings = basics.settings
    stores = metered(open_store(settings.store_url, settings.task_ttl, settings.stale_after), basics.metrics)
    stack.push_async_callback(stores.close)
    _repeating(stack, "store.sweep", stores.records.sweep, at_start=False)
    return stores


def _comfy(stack: contextlib.AsyncExitStack, settings: Settings, client: ComfyClient, host: ComfyHost,
           buckets: Buckets, *, blobs: Blobs, models: Models) -> ComfyParts:
    """What a run reaches ComfyUI through, each part closed when the app stops."""
    connection = EventConnection(settings.comfyui_base_url, settings.ws_stall_timeout, client.queue)
    stack.push_async_callback(connection.close)
    inputs = InputPreparer(settings.inputs, client, buckets, blobs)
    stack.push_async_callback(inputs.close)
    return ComfyParts(host, client, connection, inputs, ComfyFiles(client, settings.comfyui_folders), models)


def _models(stack: contextlib.AsyncExitStack, settings: Settings, buckets: Buckets,
            stores: Stores) -> tuple[Models, Pulls]:
    """The models folder and the pulls into it; a download going on when the app stops is left to resume."""
    models = Models(settings.models, buckets)
    stack.push_async_callback(models.close)
    pulls = Pulls(models, stores.shared)
    stack.push_async_callback(pulls.close)
    return models, pulls


def _run_service(stack: contextlib.AsyncExitStack, basics: _Basics, comfy: ComfyParts, stores: Stores,
                 buckets: Buckets, *, cold: ColdStart, limiter: Limiter) -> RunService:
    """The runs and their subscribers: a new subscriber is added here and nowhere else."""
    settings = basics.settings
    webhooks = WebhookSender(settings.webhooks, basics.metrics)
    stack.push_async_callback(webhooks.close)
    writer = StoreWriter(stores.records, settings.task_heartbeat)
    stack.push_async_callback(writer.close)
    usage = UsageWriter(stores.usage, settings.gpu_second_price)
    events = RunEvents([RunMetrics(basics.metrics), writer, Leases(limiter), usage], (webhooks, cold),
                       heralds=(EventPublisher(stores.log),))
    runs = RunService(comfy, stores.records, stores.cancels, events, instance_id=instance_id(),
                      run_timeout=settings.run_timeout, max_active=settings.max_active_runs,
                      max_waiting=settings.max_waiting_runs, output_store=open_outputs(settings, buckets))
    stack.push_async_callback(runs.close)
    return runs


def _sweep_and_publish(stack: contextlib.AsyncExitStack, settings: Settings, host: ComfyHost, client: ComfyClient,
                       shared: SharedDocuments) -> None:
    _repeating(stack, "catalog.publish", lambda: _publish_catalog(
        host, client, shared, settings.comfyui_start_timeout), at_start=True)
    if not settings.keep_local_outputs:
        folders = list(settings.comfyui_folders.values())
        _repeating(stack, "outputs.sweep", lambda: asyncio.to_thread(
            sweep_outputs, folders, settings.task_ttl, time.time()), at_start=True)


async def _open_worker(stack: contextlib.AsyncExitStack, basics: _Basics) -> WorkerServices:
    """Everything a worker runs with, each part's teardown on `stack` as it opens (the last opened closes
    first); ComfyUI is started without waiting for it: the agent's port opens at once and /readyz tells the rest."""
    settings = basics.settings
    session = connection_pool(COMFYUI_CONNECTIONS)
    stack.push_async_callback(session.close)
    proxy_session = _passing_session()
    stack.push_async_callback(proxy_session.close)
    client = ComfyClient(settings.comfyui_base_url, session, COMFYUI_CONNECTIONS)
    host = make_host(settings.launch if settings.launches_comfyui else None, client)
    stores = _open_stores(stack, basics)
    buckets = Buckets.from_settings(settings.buckets)
    blobs = open_blobs(settings, buckets)
    models, pulls = _models(stack, settings, buckets, stores)
    cold = ColdStart(basics.metrics, warms_up=settings.warmup_workflow is not None)
    keys, limiter = _access(settings, stores)
    runs = _run_service(stack, basics, _comfy(stack, settings, client, host, buckets, blobs=blobs, models=models),
                        stores, buckets, cold=cold, limiter=limiter)
    basics.metrics.watch(lambda: host.ready, lambda: host.restarts, lambda: runs.active_runs + runs.waiting_runs)
    await host.start()
    stack.push_async_callback(host.stop)
    _sweep_and_publish(stack, settings, host, client, stores.shared)
    catalog = LiveCatalog(client)
    workflows = _library(settings, catalog, stores)
    warmup = _begin(stack, settings, Warmup(settings, host, runs, workflows, catalog=catalog, cold=cold))
    cold.mark("agent")
    return WorkerServices(**vars(basics), catalog=catalog, workflows=workflows, stores=stores, blobs=blobs,
                          front=LocalFront(runs, buckets, settings.webhooks, limiter), models=models, pulls=pulls,
                          keys=keys, limiter=limiter,
                          host=host, runs=runs, proxy_session=proxy_session, warmup=warmup)


def _begin(stack: contextlib.AsyncExitStack, settings: Settings, warmup: Warmup) -> Warmup:
    """The warm-up, begun now off FC (FC's initializer begins it there); ComfyUI's readiness noted for the cold
    start whether or not anything warms up."""
    stack.callback(warmup.close)
    if settings.warms_up_at_start:
        warmup.start().add_done_callback(_logged_already)
    ready = asyncio.ensure_future(_note_ready(warmup.host, warmup.cold, settings.comfyui_start_timeout))
    stack.callback(ready.cancel)
    return warmup


def _logged_already(outcome: asyncio.Future[Warmed | None]) -> None:
    """A warm-up begun at start that failed was logged where it failed; /initialize would report it."""
    if not outcome.cancelled():
        outcome.exception()


async def _note_ready(host: ComfyHost, cold: ColdStart, patience: float) -> None:
    while not await host.wait_ready(patience):
        pass
    cold.mark("comfyui")


async def _open_gateway(stack: contextlib.AsyncExitStack, basics: _Basics) -> Services:
    """A gateway's store, and the GPU function it hands runs to; no ComfyUI."""
    settings = basics.settings
    assert settings.worker_url is not None  # load_settings refuses a gateway without one
    stores = _open_stores(stack, basics)
    session = _passing_session()
    stack.push_async_callback(session.close)
    # a held run may take RUN_TIMEOUT, and its inputs and outputs their time around it
    worker = WorkerFunction(settings.worker_url, settings.token_for_worker, session, settings.run_timeout + 600)
    handoff = Handoff(stores.records, stores.log, stores.cancels, worker, basics.metrics,
                      max_age=settings.async_max_event_age, instance_id=instance_id())
    buckets = Buckets.from_settings(settings.buckets)
    catalog = StoredCatalog(stores.shared)
    models, pulls = _models(stack, settings, buckets, stores)
    keys, limiter = _access(settings, stores)
    return Services(**vars(basics), catalog=catalog, workflows=_library(settings, catalog, stores),
                    stores=stores, models=models, pulls=pulls, keys=keys, limiter=limiter,
                    blobs=open_blobs(settings, buckets),
                    front=HandoffFront(handoff, worker, Loaders(settings.inputs), settings.webhooks,
                                       open_outputs(settings, buckets), model_loaders=settings.models.loaders,
                                       limiter=limiter))


def _lifespan(key: web.AppKey[S], basics: _Basics, opened: Callable[[contextlib.AsyncExitStack, _Basics],
              Awaitable[S]]) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's startup and teardown: its services under `key`, closed through one exit stack."""
    async def lifespan(app: web.Application) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            app[key] = await opened(stack, basics)
            yield

    return lifespan


def _application(basics: _Basics, key: web.AppKey[S]) -> web.Application:
    """What a worker and a gateway share: the middlewares, the run routes, the routes that read tasks from the
    store, the page and the contract."""
    settings = basics.settings
    app = web.Application(client_max_size=settings.max_body_bytes,
                          middlewares=[cors(settings.cors_origins), json_errors({v2_routes.PREFIX: envelope_response}),
                                       authenticate(key)])
    app.router.add_get("/healthz", health.healthz)
    metrics = route(key, metrics_route.metrics)
    app.router.add_get("/metrics", metrics if settings.metrics_public else needs(Scope.ADMIN, metrics))
    app.router.add_get("/api/status", route(key, status.status))
    app.router.add_get("/api/tasks/{task_id}", route(key, tasks.get_task))
    app.router.add_get("/api/tasks/{task_id}/events", route(key, streams.task_events))
    app.router.add_post("/api/run", route(key, run.run))
    app.router.add_post("/api/tasks/{task_id}/cancel", route(key, run.cancel_task))
    app.router.add_get("/api/workflows", route(key, workflows.list_workflows))
    app.router.add_get("/api/workflows/{name}", route(key, workflows.get_workflow))
    app.router.add_post("/api/workflows", route(key, workflows.publish_workflow))  # a dry run for any key
    app.router.add_delete("/api/workflows/{name}", needs(Scope.ADMIN, route(key, workflows.retire_workflow)))
    app.router.add_post("/api/workflows/{name}/run", route(key, run.run_workflow))
    app.router.add_get("/api/models", route(key, models_api.list_models))
    app.router.add_post("/api/models", needs(Scope.ADMIN, route(key, models_api.pull_model)))
    app.router.add_get("/api/pulls/{pull_id}", needs(Scope.ADMIN, route(key, models_api.get_pull)))
    app.router.add_delete("/api/models/{folder}/{name:.+}", needs(Scope.ADMIN, route(key, models_api.delete_model)))
    app.router.add_post("/api/keys", needs(Scope.ADMIN, route(key, keys_api.create_key)))
    app.router.add_get("/api/keys", needs(Scope.ADMIN, route(key, keys_api.list_keys)))
    app.router.add_delete("/api/keys/{name}", needs(Scope.ADMIN, route(key, keys_api.revoke_key)))
    app.router.add_get("/api/me", route(key, keys_api.me))
    app.router.add_get("/api/usage", route(key, usage_api.usage))
    v2_routes.add_routes(app, key)
    page.add_routes(app, key)
    contract.add_routes(app, key)
    return app


def create_app(settings: Settings) -> web.Application:
    if settings.gateway:
        return create_gateway(settings)
    basics = _Basics.of(settings)
    app = _application(basics, WORKER)
    app.cleanup_ctx.append(_lifespan(WORKER, basics, _open_worker))
    app.router.add_get("/livez", route(WORKER, health.livez))
    app.router.add_get("/readyz", route(WORKER, health.readyz))
    app.router.add_post("/initialize", needs(Scope.ADMIN, route(WORKER, lifecycle.initialize)))
    app.router.add_get("/pre-stop", needs(Scope.ADMIN, route(WORKER, lifecycle.pre_stop)))
    app.router.add_route("*", "/{tail:.*}", needs(Scope.ADMIN, route(WORKER, proxy.proxy)))
    return app


def create_gateway(settings: Settings) -> web.Application:
    """No ComfyUI, no proxy to one: every other path is a 404."""
    basics = _Basics.of(settings)
    app = _application(basics, GATEWAY)
    app.cleanup_ctx.append(_lifespan(GATEWAY, basics, _open_gateway))
    return app
