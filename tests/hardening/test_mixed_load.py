"""1,000 mixed runs at concurrency 32: no hung request, every answer right for its own run, no task left open."""

from __future__ import annotations

import asyncio
import base64
import io
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from PIL import Image

from agent_process import AgentProcess
from double_helpers import rgb, save_prompt, with_preview
from hardening.conftest import record
from waiting import EVENTUALLY, until

RUNS = 1000
CONCURRENCY = 32
CACHED_COLOR = 0x0A0B0C
KINDS = {"fast": 50, "preview": 10, "slow": 8, "cached": 10, "failing": 8, "invalid": 6, "timeout": 3, "canceled": 5}
FINAL_STATUS = {"fast": "succeeded", "preview": "succeeded", "slow": "succeeded", "cached": "succeeded",
                "failing": "failed", "invalid": "failed", "timeout": "failed", "canceled": "canceled"}


@dataclass
class Case:
    index: int
    kind: str

    @property
    def task_id(self) -> str:
        return f"mix-{self.index}"

    @property
    def color(self) -> int:
        return CACHED_COLOR if self.kind == "cached" else (self.index * 7919 + 1) % 0xFFFFFF

    def body(self) -> dict[str, Any]:
        prompt = save_prompt(self.color, f"mix{self.index % 7}", delay=0.2 if self.kind == "slow" else None,
                             fault="error" if self.kind == "failing" else None)
        if self.kind == "preview":
            prompt = with_preview(prompt)
        if self.kind == "invalid":
            prompt["1"]["inputs"]["width"] = 0
        if self.kind in ("timeout", "canceled"):  # a node only its timeout or its cancel can end
            prompt["1"]["_meta"] = {"double": {"delay": 10 * EVENTUALLY}}
        return {"prompt": prompt, "options": {"timeout": 0.3}} if self.kind == "timeout" else {"prompt": prompt}


def pixel(data: str) -> tuple[int, int, int]:
    value = Image.open(io.BytesIO(base64.b64decode(data, validate=True))).convert("RGB").getpixel((0, 0))
    assert isinstance(value, tuple)
    return value[0], value[1], value[2]


def check(case: Case, status: int, body: dict[str, Any]) -> None:
    expected: dict[str, Callable[[], None]] = {
        "fast": lambda: _image(case, status, body, "2"),
        "cached": lambda: _image(case, status, body, "2"),
        "slow": lambda: _image(case, status, body, "2"),
        "preview": lambda: _images(case, status, body, "2", "3"),
        "failing": lambda: _error(status, body, 500, "ExecutionError", node_id="1"),
        "invalid": lambda: _error(status, body, 400, "PromptValidationError"),
        "timeout": lambda: _error(status, body, 504, "Timeout"),
        "canceled": lambda: _error(status, body, 409, "Canceled"),
    }
    expected[case.kind]()


def _image(case: Case, status: int, body: dict[str, Any], node: str) -> None:
    assert status == 200, (case, body)
    assert pixel(body[node]["results"][0]) == rgb(case.color), case


def _images(case: Case, status: int, body: dict[str, Any], *nodes: str) -> None:
    for node in nodes:
        _image(case, status, body, node)


def _error(status: int, body: dict[str, Any], want: int, kind: str, **fields: str) -> None:
    assert (status, body["message"]) == (want, kind), body
    for key, value in fields.items():
        assert body[key] == value, body


async def cancel_when_started(session: aiohttp.ClientSession, url: str, case: Case) -> None:
    async def started() -> bool:
        async with session.get(f"{url}/api/tasks/{case.task_id}") as response:
            return response.status == 200 and (await response.json())["status"] in ("queued", "running")

    await until(started, EVENTUALLY, f"{case.task_id} to start")
    async with session.post(f"{url}/api/tasks/{case.task_id}/cancel") as response:
        assert response.status in (200, 202), await response.text()


async def test_thousand_mixed_runs(agent_factory: Callable[..., AgentProcess]) -> None:
    agent = agent_factory(WS_STALL_TIMEOUT="5")
    rng = random.Random(7)
    kinds = [kind for kind, share in KINDS.items() for _ in range(share * RUNS // 100)]
    rng.shuffle(kinds)
    cases = [Case(index, kind) for index, kind in enumerate(kinds)]
    gate = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=2 * EVENTUALLY)

    async def one(session: aiohttp.ClientSession, case: Case) -> float:
        async with gate:
            started = time.monotonic()
            canceller = (asyncio.ensure_future(cancel_when_started(session, agent.url, case))
                         if case.kind == "canceled" else None)
            async with session.post(f"{agent.url}/api/run", json=case.body(),
                                    headers={"task-id": case.task_id}) as response:
                check(case, response.status, await response.json())
            if canceller is not None:
                await canceller
            return time.monotonic() - started

    started = time.monotonic()
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        durations = await asyncio.gather(*(one(session, case) for case in cases))
        final: dict[str, str] = {}
        for case in cases:
            async with session.get(f"{agent.url}/api/tasks/{case.task_id}") as response:
                final[case.task_id] = (await response.json())["status"]
    statuses = Counter(final.values())
    wrong = [(case.task_id, case.kind, final[case.task_id]) for case in cases
             if final[case.task_id] != FINAL_STATUS[case.kind]]
    assert not wrong, f"{len(wrong)} tasks did not end as scripted (task, kind, status): {wrong[:20]}"
    assert statuses == Counter(FINAL_STATUS[kind] for kind in kinds), statuses
    assert statuses["queued"] == statuses["running"] == 0, statuses
    record("mixed_load", runs=RUNS, concurrency=CONCURRENCY, kinds=KINDS, seconds=round(time.monotonic() - started, 1),
           slowest_request_seconds=round(max(durations), 2), final_statuses=dict(statuses))
