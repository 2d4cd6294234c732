"""The contract's page at /docs, in a real Chromium: every operation of the contract shows, the token is not
needed, and nothing is fetched from anywhere but the agent (no CDN, no validator badge)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from playwright.async_api import Page, Request, expect

from agent.api.contract import contract
from agent_harness import running_agent

METHODS = {"get", "post", "put", "delete", "patch"}


@pytest.fixture
async def site(double: str) -> AsyncIterator[str]:
    async with running_agent(comfyui_url=double, agent_token="docs-token") as agent:
        yield str(agent.make_url("/docs"))


async def test_every_operation_shows_without_the_token_and_nothing_leaves_the_agent(page: Page, site: str) -> None:
    origin = site.removesuffix("/docs")
    requested: list[str] = []

    def note(request: Request) -> None:
        requested.append(request.url)

    page.on("request", note)
    await page.goto(site)
    await expect(page.locator(".information-container .title")).to_contain_text("comfyui-agent")
    spec = contract()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                block = page.locator(f"#operations-{operation['tags'][0]}-{operation['operationId']}")
                await expect(block).to_be_visible()
                await expect(block.locator(".opblock-summary-path")).to_have_attribute("data-path", path)
    await page.locator("#operations-runs-run .opblock-summary").click()
    await expect(page.locator("#operations-runs-run")).to_contain_text("TaskConflict")
    assert requested and all(url.startswith(origin + "/") for url in requested), requested
    assert f"{origin}/openapi.json" in requested
