"""Every command of `comfyui-agent` as a real process against the agent in front of the double: outputs land in
`--out` with ComfyUI's bytes, each error kind has its exit status and one line, `watch` shows progress."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent_harness import running_agent
from agent_process import free_port
from double_helpers import save_prompt

Agent = TestClient[web.Request, web.Application]
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


@pytest.fixture
async def agent(double: str) -> AsyncIterator[Agent]:
    async with running_agent(comfyui_url=double) as client:
        yield client


async def command(agent: Agent, *args: str) -> Done:
    env = {**os.environ, "COMFYUI_AGENT_URL": str(agent.make_url("")).rstrip("/"), "COLUMNS": "120"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "agent", *args, env=env, cwd=REPO,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return Done(process.returncode, out.decode(), err.decode())


async def test_run_a_graph_with_set_and_the_outputs_land_in_out(agent: Agent, tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    graph.write_text(json.dumps(save_prompt(0x101010, "cli")))
    done = await command(agent, "run", str(graph), "--set", "1.color=16711680", "--task-id", "cli-1",
                         "--out", str(tmp_path / "out"))
    assert done.code == 0, done.err
    [saved] = (tmp_path / "out").iterdir()
    assert saved.name == "cli-1_2_cli-1_cli_00001_.png"
    written = tmp_path / "comfyui" / "output" / "cli-1_cli_00001_.png"  # the double's own file
    assert saved.read_bytes() == written.read_bytes()
    assert "cli-1 succeeded" in done.out and "node 2" in done.err  # its bars, on stderr


async def test_run_a_workflow_with_params_as_json(agent: Agent) -> None:
    done = await command(agent, "run", "txt2img", "--json", "--param", "steps=2", "--param", "width=64",
                         "--param", "height=64", "--param", "checkpoint=random-sd15.safetensors",
                         "--param", "prompt=a boat")
    assert done.code == 0, done.err
    task = json.loads(done.out)
    assert task["status"] == "succeeded" and task["params"]["prompt"] == "a boat" and task["params"]["steps"] == 2


async def test_async_then_status_and_watch(agent: Agent, tmp_path: Path) -> None:
    path = tmp_path / "slow.json"
    path.write_text(json.dumps(save_prompt(0x202020, delay=1.0)))
    started = await command(agent, "run", str(path), "--async", "--task-id", "cli-3")
    assert started.code == 0 and started.out.strip() == "cli-3"
    status = await command(agent, "status", "cli-3")
    assert status.code == 0 and status.out.split()[0] == "cli-3"
    watched = await command(agent, "watch", "cli-3")
    assert watched.code == 0 and "cli-3 succeeded" in watched.out and "node 1" in watched.err


async def test_cancel_and_a_canceled_task_exits_4(agent: Agent) -> None:
    accepted = await agent.post("/api/run", json=save_prompt(3, delay=5.0),
                                headers={"Prefer": "respond-async", "task-id": "cli-4"})
    assert accepted.status == 202
    canceled = await command(agent, "cancel", "cli-4")
    assert canceled.code == 0 and "cli-4" in canceled.out
    watched = await command(agent, "watch", "cli-4")
    assert watched.code == 4 and "Canceled" in watched.err


@pytest.mark.parametrize(("args", "code", "kind"), [
    (["status", "never"], 3, "TaskNotFound"),
    (["run", "txt2img", "--param", "steps=many"], 2, "RequestParamsError"),
    (["run", "nothing-like-it"], 3, "NotFound"),
])
async def test_each_error_kind_has_its_exit_status_and_one_line(agent: Agent, args: list[str], code: int,
                                                                kind: str) -> None:
    done = await command(agent, *args)
    assert done.code == code and done.err.startswith(f"comfyui-agent: {kind}: ") and done.err.count("\n") == 1


async def test_a_failed_run_exits_1_naming_the_node(agent: Agent, tmp_path: Path) -> None:
    graph = tmp_path / "bad.json"
    graph.write_text(json.dumps(save_prompt(4, fault="raise")))
    done = await command(agent, "run", str(graph))
    assert done.code == 1 and "ExecutionError" in done.err


async def test_a_run_past_its_timeout_exits_6_and_an_agent_away_exits_5(agent: Agent, tmp_path: Path) -> None:
    graph = tmp_path / "slow.json"
    graph.write_text(json.dumps(save_prompt(5, delay=5.0)))
    timed_out = await command(agent, "run", str(graph), "--timeout", "0.5")
    assert timed_out.code == 6 and "Timeout" in timed_out.err
    away = await command(agent, "status", "x", "--url", f"http://127.0.0.1:{free_port()}")
    assert away.code == 5 and "cannot reach the agent" in away.err


async def test_workflows_lists_the_agents(agent: Agent) -> None:
    done = await command(agent, "workflows")
    assert done.code == 0 and done.out.startswith(("img2img:", "txt2img:", "warmup:")) and "txt2img:" in done.out


def test_every_exit_status_names_a_kind_the_agent_has() -> None:
    import agent.api.errors  # noqa: F401 - defines the API's own kinds (Unauthorized, NotFound)
    from agent.client.cli import EXIT_BY_KIND
    from agent.errors import kinds

    assert set(EXIT_BY_KIND) <= kinds()
