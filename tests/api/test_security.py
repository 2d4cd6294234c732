"""AGENT_TOKEN on every route but /healthz (the proxy and its websocket included), and CORS as configured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from double_helpers import save_prompt

Client = TestClient[web.Request, web.Application]
TOKEN = "s3cret-token"
GUARDED = [("GET", "/readyz"), ("POST", "/api/run"), ("GET", "/api/status?id=x"), ("GET", "/api/tasks/x"),
           ("POST", "/api/tasks/x/cancel"), ("POST", "/initialize"), ("GET", "/pre-stop"), ("GET", "/system_stats"),
           ("GET", "/"), ("POST", "/prompt"), ("GET", "/view?filename=x.png")]


@pytest.fixture
async def guarded(double: str) -> AsyncIterator[Client]:
    async with running_agent(comfyui_url=double, agent_token=TOKEN) as client:
        yield client


async def test_healthz_is_open(guarded: Client) -> None:
    assert (await guarded.get("/healthz")).status == 200


@pytest.mark.parametrize(("method", "path"), GUARDED)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
async def test_every_other_route_needs_the_token(guarded: Client, method: str, path: str,
                                                 authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded.request(method, path, headers=headers, json=save_prompt(1))
    assert response.status == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert (await response.json())["message"] == "Unauthorized"


async def test_the_right_token_opens_every_route(guarded: Client) -> None:
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await guarded.get("/readyz", headers=bearer)).status == 200
    run = await guarded.post("/api/run", json=save_prompt(1), headers={**bearer, "task-id": "auth-1"})
    assert run.status == 200
    assert (await guarded.get("/api/tasks/auth-1", headers=bearer)).status == 200
    assert (await guarded.get("/system_stats", headers=bearer)).status == 200


async def test_websocket_needs_the_token_too(guarded: Client) -> None:
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await guarded.ws_connect("/ws?clientId=nope")
    assert refused.value.status == 401
    async with guarded.ws_connect("/ws?clientId=yes", headers={"Authorization": f"Bearer {TOKEN}"}) as socket:
        assert (await socket.receive_json())["data"]["sid"] == "yes"


async def test_token_in_the_query_once_leaves_a_strict_cookie_for_the_browser(guarded: Client) -> None:
    opened = await guarded.get(f"/system_stats?token={TOKEN}&x=1", allow_redirects=False)
    assert opened.status == 303 and opened.headers["Location"] == "/system_stats?x=1"
    cookie = opened.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert (await guarded.get("/system_stats")).status == 200  # the client kept the cookie
    async with guarded.ws_connect("/ws?clientId=by-cookie") as socket:
        assert (await socket.receive_json())["data"]["sid"] == "by-cookie"


async def test_no_cors_headers_unless_configured(agent: Client) -> None:
    response = await agent.get("/healthz", headers={"Origin": "https://anyone.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


async def test_listed_origins_only_with_credentials(double: str) -> None:
    async with running_agent(comfyui_url=double, cors_origins=("https://app.example",)) as client:
        allowed = await client.get("/healthz", headers={"Origin": "https://app.example"})
        assert allowed.headers["Access-Control-Allow-Origin"] == "https://app.example"
        assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
        assert "X-Task-Id" in allowed.headers["Access-Control-Expose-Headers"]
        assert allowed.headers["Vary"] == "Origin"
        other = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        preflight = await client.options("/api/run", headers={
            "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        assert preflight.status == 204
        assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
        refused = await client.options("/api/run", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert "Access-Control-Allow-Origin" not in refused.headers


async def test_any_origin_never_gets_credentials(double: str) -> None:
    async with running_agent(comfyui_url=double, cors_origins=("*",), agent_token=TOKEN) as client:
        response = await client.get("/healthz", headers={"Origin": "https://evil.example"})
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "Access-Control-Allow-Credentials" not in response.headers
        preflight = await client.options("/api/run", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
        assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == "*"
        unauthorized = await client.post("/api/run", json=save_prompt(1), headers={"Origin": "https://evil.example"})
        assert unauthorized.status == 401 and unauthorized.headers["Access-Control-Allow-Origin"] == "*"
