"""The port opens before the application is loaded (FC probes it on every new instance): meanwhile /healthz
answers and every other request is told to come back, in the JSON error shape; then the application answers.
The load is held open by the test, so nothing here depends on how fast this machine imports."""

from __future__ import annotations

import asyncio

import aiohttp
from aiohttp import web

from agent.config import Settings
from agent.main import listening_socket, load_app, open_port
from agent_process import free_port
from double_helpers import save_prompt


async def test_the_port_answers_while_the_application_loads(double: str) -> None:
    port = free_port()
    settings = Settings(comfyui_url=double, task_store="memory://", host="127.0.0.1", port=port)
    loaded = asyncio.Event()

    async def held_load(settings: Settings) -> web.Application:
        await loaded.wait()
        return await load_app(settings)

    opening = asyncio.ensure_future(open_port(listening_socket("127.0.0.1", port), settings, held_load))
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/healthz") as health:
            assert health.status == 200 and await health.json() == {"status": "ok"}
        async with session.post(f"{url}/api/run", json=save_prompt(1)) as early:
            assert early.status == 503 and early.headers["Retry-After"] == "1"
            assert (await early.json())["message"] == "ComfyUIUnavailable"
        assert not opening.done()
        loaded.set()
        runner = await asyncio.wait_for(opening, 60)
        try:
            async with session.get(f"{url}/api/status", params={"id": "nope"}) as status:
                assert status.status == 404 and (await status.json())["message"] == "TaskNotFound"
        finally:
            await runner.cleanup()
