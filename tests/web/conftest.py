"""A real headless Chromium (Debian's package, driven by Playwright; no browser download) on the agent's page,
with the double behind the agent, its fonts drawn the same on every machine (fonts.conf). Screenshots land in
.artifacts/web/."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright

ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "web"
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
FONTS = Path(__file__).resolve().parent / "fonts.conf"  # the same font rendering on every machine
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"]


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if not Path(CHROMIUM).is_file():
        if os.environ.get("CI"):
            pytest.fail(f"Chromium is missing at {CHROMIUM}; .ci/run installs Debian's chromium package")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium_path: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path, args=FLAGS,
                                                    env={**os.environ, "FONTCONFIG_FILE": str(FONTS)})
        try:
            yield launched
        finally:
            await launched.close()


OpenPage = Callable[..., AbstractAsyncContextManager[Page]]


@pytest.fixture
def artifacts() -> Path:
    """Where screenshots go (kept by CI)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def open_page(browser: Browser, request: pytest.FixtureRequest) -> OpenPage:
    """A page in a context of its own (`context`: Playwright's options, the viewport first), screenshotted into
    .artifacts/web/ when done; a JavaScript error on it fails the test."""

    @asynccontextmanager
    async def opened(**context: Any) -> AsyncIterator[Page]:
        browsing = await browser.new_context(**context)
        tab = await browsing.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        try:
            yield tab
        finally:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            await tab.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"), full_page=True)
            await browsing.close()
        assert errors == [], f"JavaScript errors on the page: {errors}"

    return opened


@pytest.fixture
async def page(open_page: OpenPage) -> AsyncIterator[Page]:
    async with open_page(viewport={"width": 1280, "height": 1000}) as opened:
        yield opened
