"""Everything else goes to ComfyUI: its API and web UI, HTTP and websocket, streamed, images shown inline."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent, serving
from double_helpers import save_prompt

Client = TestClient[web.Request, web.Application]
BIG = 32 * 1024 * 1024


async def test_comfyui_api_answers_through_the_agent(agent: Client, double: str) -> None:
    async with aiohttp.ClientSession() as session, session.get(f"{double}/object_info/EmptyImage") as direct:
        expected = await direct.json()
    through = await agent.get("/object_info/EmptyImage")
    assert through.status == 200 and await through.json() == expected
    assert (await agent.get("/api/system_stats")).status == 200
    assert (await agent.get("/no/such/route")).status == 404


async def test_native_prompt_websocket_and_view_through_the_agent(agent: Client) -> None:
    async with agent.ws_connect("/ws?clientId=through-proxy") as socket:
        hello = json.loads((await socket.receive()).data)
        assert hello == {"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}},
                                                    "sid": "through-proxy"}}
        posted = await agent.post("/prompt", json={"prompt": save_prompt(0x777777, "native"),
                                                   "client_id": "through-proxy"})
        prompt_id = (await posted.json())["prompt_id"]
        kinds = []
        while True:
            message = await asyncio.wait_for(socket.receive(), 10)
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            kinds.append(event["type"])
            if event["type"] == "executed":
                image = event["data"]["output"]["images"][0]
            if event["type"] == "executing" and event["data"]["node"] is None:
                break
        assert event["data"]["prompt_id"] == prompt_id and "execution_success" in kinds
    view = await agent.get("/view", params=image)
    assert view.status == 200 and view.content_type == "image/png"
    assert view.headers["Content-Disposition"].startswith("inline; filename=")
    assert (await view.read()).startswith(b"\x89PNG")


async def test_upload_through_the_agent(agent: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("image", b"\x89PNG\r\n\x1a\n" + bytes(64), filename="through.png", content_type="image/png")
    response = await agent.post("/upload/image", data=form)
    assert response.status == 200
    assert (await response.json())["name"] == "through.png"


class SlowStream:
    """An upstream whose large response pauses after its first megabyte until the test lets it go on."""

    def __init__(self) -> None:
        self.go_on = asyncio.Event()
        self.headers: list[dict[str, str]] = []

    async def view(self, request: web.Request) -> web.StreamResponse:
        self.headers.append(dict(request.headers))
        response = web.StreamResponse(headers={"Content-Type": "image/png", "Content-Length": str(BIG)})
        await response.prepare(request)
        chunk = bytes(range(256)) * 4096
        await response.write(chunk)
        await asyncio.wait_for(self.go_on.wait(), 30)
        for _ in range(BIG // len(chunk) - 1):
            await response.write(chunk)
        return response

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/view", self.view)
        app.router.add_get("/system_stats", self.stats)
        return app


@pytest.fixture
async def slow() -> AsyncIterator[tuple[SlowStream, str]]:
    upstream = SlowStream()
    async with serving(upstream.app()) as url:
        yield upstream, url


async def test_a_large_view_is_streamed_not_buffered(slow: tuple[SlowStream, str]) -> None:
    upstream, url = slow
    async with running_agent(comfyui_url=url) as agent:
        response = await agent.get("/view?filename=big.png&type=output", headers={"Authorization": "Bearer x",
                                                                                  "Cookie": "a=b"})
        first = await asyncio.wait_for(response.content.readexactly(1024 * 1024), 10)
        upstream.go_on.set()
        digest = hashlib.sha256(first)
        async for chunk in response.content.iter_chunked(1024 * 1024):
            digest.update(chunk)
    expected = hashlib.sha256(bytes(range(256)) * 4096 * (BIG // (1024 * 1024))).hexdigest()
    assert digest.hexdigest() == expected
    assert not {"Authorization", "Cookie"} & set(upstream.headers[0])


async def test_comfyui_down_is_503_json() -> None:
    async with running_agent(comfyui_url="http://127.0.0.1:9", ready=False) as agent:
        response = await agent.get("/system_stats")
        assert response.status == 503
        assert (await response.json())["message"] == "ComfyUIUnavailable"
        assert "Retry-After" in response.headers
