"""Typed slots on the aiohttp application: what the thin handlers are given to work with."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from agent.comfy.host import ComfyHost
from agent.config import Settings
from agent.tasks.runner import Runner
from agent.tasks.store import TaskStore

SETTINGS = web.AppKey("settings", Settings)
HOST = web.AppKey("host", ComfyHost)
STORE = web.AppKey("store", TaskStore)
RUNNER = web.AppKey("runner", Runner)
PROXY_SESSION = web.AppKey("proxy_session", aiohttp.ClientSession)
