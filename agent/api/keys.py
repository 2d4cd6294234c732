"""Typed slots on the aiohttp application: what the thin handlers are given to work with."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from agent.api.polls import RecentPolls
from agent.buckets.clients import Buckets
from agent.comfy.host import ComfyHost
from agent.config import Settings
from agent.gateway.handoff import Handoff
from agent.gateway.worker import WorkerFunction
from agent.inputs.slots import Loaders
from agent.metrics import Metrics
from agent.runs.service import RunService
from agent.stores import Stores
from agent.streams.slots import StreamSlots
from agent.workflows.choices import Choices
from agent.workflows.library import Library

SETTINGS = web.AppKey("settings", Settings)
HOST = web.AppKey("host", ComfyHost)
STORES = web.AppKey("stores", Stores)
RUNS = web.AppKey("runs", RunService)
PROXY_SESSION = web.AppKey("proxy_session", aiohttp.ClientSession)
BUCKETS = web.AppKey("buckets", Buckets)
METRICS = web.AppKey("metrics", Metrics)
STREAM_SLOTS = web.AppKey("stream_slots", StreamSlots)
WORKFLOWS = web.AppKey("workflows", Library)
CHOICES = web.AppKey("choices", Choices)
POLLS = web.AppKey("polls", RecentPolls)
HANDOFF = web.AppKey("handoff", Handoff)  # a gateway's
WORKER = web.AppKey("worker", WorkerFunction)  # a gateway's
LOADERS = web.AppKey("loaders", Loaders)  # a gateway's
