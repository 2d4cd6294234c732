"""Shared fixtures: the recordings must be there, the double in-process, integration tests gated, a timeout on
every test (pyproject.toml's, longer for the hardening and integration suites, all scaled by TEST_WAIT_SCALE),
and the time spent per folder."""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from comfy_double.harness import start_double
from recordings import PROTOCOL_DIR
from s3_server import s3, s3_endpoint  # noqa: F401 - fixtures for every folder
from waiting import COMFYUI_START, SCALE


@pytest.fixture
async def double(tmp_path: Path) -> AsyncIterator[str]:
    """The test double of ComfyUI in this process, its folders under tmp_path/comfyui; yields its URL. It acts as
    ComfyUI DOUBLE_COMFYUI_VERSION (see comfy_double.harness.start_double)."""
    runner, url = await start_double(tmp_path / "comfyui")
    try:
        yield url
    finally:
        await runner.cleanup()


TESTS = Path(__file__).resolve().parent
_seconds_by_folder: defaultdict[str, float] = defaultdict(float)

# Folders whose tests take longer than pyproject.toml's timeout allows: a thousand runs; a real ComfyUI's start
# (its budget, COMFYUI_TEST_START_TIMEOUT, on top: a module's first test also waits for the start).
HARDENING = TESTS / "hardening"
INTEGRATION = TESTS / "integration"
LONG_TIMEOUT = 420


def timeout_of(item: pytest.Item) -> float | None:
    """A test's own timeout marker, else its folder's; None: pytest-timeout's own (`--timeout`, pyproject.toml)."""
    marker = item.get_closest_marker("timeout")
    if marker is not None and marker.args:
        return float(marker.args[0])
    if item.path.is_relative_to(INTEGRATION):
        return LONG_TIMEOUT + COMFYUI_START / SCALE
    if item.path.is_relative_to(HARDENING):
        return LONG_TIMEOUT
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Timeouts: the long folders' own, and every one scaled with the waits (TEST_WAIT_SCALE, tests/waiting.py).
    Integration tests need a real ComfyUI; without COMFYUI_DIR they are skipped, never failed."""
    for item in items:
        timeout = timeout_of(item)
        if SCALE != 1:
            timeout = (timeout or float(config.getoption("timeout") or config.getini("timeout"))) * SCALE
        if timeout is not None:
            item.add_marker(pytest.mark.timeout(timeout), append=False)
    comfyui_dir = os.environ.get("COMFYUI_DIR")
    if comfyui_dir and (Path(comfyui_dir) / "main.py").is_file():
        return
    skip = pytest.mark.skip(reason="COMFYUI_DIR does not point at a ComfyUI checkout")
    for item in items:
        if "integration" in item.keywords:
            item.add_marker(skip)


def pytest_sessionstart(session: pytest.Session) -> None:
    if not PROTOCOL_DIR.is_dir():
        raise pytest.UsageError(f"the ComfyUI recordings are missing: {PROTOCOL_DIR} (set COMFYUI_PROTOCOL_DIR)")



def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Setup, call and teardown of every test, summed by its folder under tests/ (README: Tests)."""
    path = Path(report.fspath).resolve()
    if path.is_relative_to(TESTS):
        parts = path.relative_to(TESTS).parts
        _seconds_by_folder[parts[0] if len(parts) > 1 else "."] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not _seconds_by_folder:
        return
    terminalreporter.section("time per folder")
    for folder, seconds in sorted(_seconds_by_folder.items(), key=lambda item: -item[1]):
        terminalreporter.write_line(f"{seconds:8.1f} s  tests/{folder}")
