"""The page's and the contract page's files: whatever name a caller sends, a miss is a JSON 404, never a 500."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

Client = TestClient[web.Request, web.Application]


@pytest.mark.parametrize("prefix", ["/app/", "/docs/"])
@pytest.mark.parametrize("name", [
    "a" * 300,  # longer than a file name may be: the lookup itself fails (ENAMETOOLONG)
    "b" * 200 + "/" + "c" * 300,
    "missing.js",
    "%00.js",  # a NUL byte, which no path may hold
    "..%2F..%2Fetc%2Fpasswd",
])
async def test_a_name_the_folder_cannot_hold_is_a_json_404(agent: Client, prefix: str, name: str) -> None:
    response = await agent.get(prefix + name)
    assert response.status == 404, await response.text()
    reply = await response.json()
    assert reply["message"] == "NotFound"
    assert len(reply["error"]) < 200  # a 300-character name is not echoed whole


@pytest.mark.parametrize("path", ["/app/app.js", "/docs/page.js"])
async def test_a_file_that_is_there_is_served(agent: Client, path: str) -> None:
    response = await agent.get(path)
    assert response.status == 200
    assert await response.read()
