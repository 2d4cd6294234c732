"""Start the agent in-process, the way the tests need it, against any ComfyUI (replay, double, real)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from agent.api.services import WORKER
from agent.app import create_app
from agent.config import Settings
from agent.main import app_runner


class AgentServer(TestServer):
    """aiohttp's test server, serving the agent as comfyui-agent does (agent/main.py's runner): its own runner
    would cancel a handler whose client left, which the agent's never does."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        return app_runner(self.app)


@asynccontextmanager
async def running_agent(ready: bool = True, **settings: Any) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The agent on a free loopback port; `settings` are Settings fields (task_store defaults to memory://)."""
    settings.setdefault("task_store", "memory://")
    app = create_app(Settings(**settings))
    client = TestClient(AgentServer(app, host="127.0.0.1"))
    await client.start_server()
    try:
        if ready:
            assert await app[WORKER].host.wait_ready(30), "ComfyUI never became ready"
        yield client
    finally:
        await client.close()


@asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[str]:
    """Any aiohttp app on a free loopback port; yields its base URL."""
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/")
    finally:
        await server.close()


async def scrape(agent: TestClient[web.Request, web.Application],
                 **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The agent's metrics as prometheus-client's own parser reads them: (name, labels) → value."""
    response = await agent.get("/metrics", headers=headers)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/plain"
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(await response.text()) for sample in family.samples}
