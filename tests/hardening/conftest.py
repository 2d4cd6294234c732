"""The hardening suite: the agent as a real process supervising the double, pushed hard and broken on purpose."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from agent_process import AgentProcess, launch_with_double

FIGURES = Path(__file__).resolve().parents[2] / ".artifacts" / "hardening.json"


@pytest.fixture
def agent_factory(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    started: list[AgentProcess] = []

    def start(name: str = "agent", **env: str) -> AgentProcess:
        process = launch_with_double(tmp_path / name, **env)
        started.append(process)
        process.wait_ready()
        return process

    yield start
    for process in started:
        process.stop()


def record(name: str, **figures: Any) -> None:
    """Keep a test's measured figures (for the README's reliability section) in .artifacts/hardening.json."""
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    known = json.loads(FIGURES.read_text()) if FIGURES.exists() else {}
    known[name] = figures
    FIGURES.write_text(json.dumps(known, indent=2, sort_keys=True))
