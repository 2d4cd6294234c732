"""main.py as the agent runs ComfyUI: command line, start-up, signals."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import aiohttp
import pytest

from comfy_double.harness import DoubleProcess
from comfy_double.main import config_from, parse_args
from waiting import EVENTUALLY, until


async def get_status(url: str) -> int:
    async with aiohttp.ClientSession() as session, session.get(url + "/system_stats") as response:
        return response.status


async def test_serves_like_comfyui_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    process = await DoubleProcess(tmp_path, "--some-future-flag", "value").start(EVENTUALLY)
    assert await get_status(process.url) == 200
    assert (tmp_path / "temp").is_dir()
    assert process.stop(EVENTUALLY) == 0
    output = process.output()
    assert "Starting server" in output
    assert f"To see the GUI go to: http://127.0.0.1:{process.port}" in output
    assert not (tmp_path / "temp").exists()  # ComfyUI empties its temp directory on the way out


async def test_sigint_stops_cleanly(tmp_path: Path) -> None:
    process = await DoubleProcess(tmp_path).start(EVENTUALLY)
    process.kill(signal.SIGINT)
    assert await process.wait_exit(EVENTUALLY) == 0


async def test_startup_gate_keeps_the_port_closed_until_its_file_exists(tmp_path: Path) -> None:
    gate = tmp_path / "listen-now"
    process = DoubleProcess(tmp_path, env={"DOUBLE_STARTUP_GATE": str(gate)})

    async def starting() -> bool:  # its last line before the gate: from here on it waits to listen
        assert process.returncode() is None, process.output()
        return "ComfyUI version:" in process.output()

    process.launch()
    try:
        await until(starting, EVENTUALLY, "the double to start and reach its start-up gate")
        with pytest.raises(aiohttp.ClientConnectionError):
            await get_status(process.url)
        gate.touch()
        await process.wait_ready(EVENTUALLY)
    finally:
        process.stop()


async def test_startup_delay_waits_its_seconds_before_listening(tmp_path: Path) -> None:
    process = DoubleProcess(tmp_path, env={"DOUBLE_STARTUP_DELAY": "1.0"})
    started = time.monotonic()
    process.launch()
    try:
        await process.wait_ready(EVENTUALLY)
        assert time.monotonic() - started >= 1.0  # a lower bound: a slow machine only makes it longer
    finally:
        process.stop()


def test_default_directories_are_under_the_current_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = config_from(parse_args(["--listen", "127.0.0.1", "--port", "8188", "--cpu"]))
    assert (config.input_dir, config.output_dir, config.temp_dir) == (
        tmp_path / "input", tmp_path / "output", tmp_path / "temp"
    )
    assert not config.latent_previews


def test_temp_directory_gets_a_temp_subfolder_and_previews_follow_the_preview_method(tmp_path: Path) -> None:
    config = config_from(parse_args(["--temp-directory", str(tmp_path), "--preview-method", "latent2rgb"]))
    assert config.temp_dir == tmp_path / "temp"
    assert config.latent_previews


def test_user_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--user-directory", str(tmp_path / "missing")])
    assert parse_args(["--user-directory", str(tmp_path)]).user_directory == str(tmp_path)
