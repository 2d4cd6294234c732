"""Every command of `comfyui-agent` as a real process against the agent in front of the double: outputs land in
`--out` with ComfyUI's bytes, each error kind has its exit status and one line, `watch` shows progress, bars are
named after the nodes, a quiet instance is waited out, a closed stdout ends a command quietly, `--help` lists
every command."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from agent.api.services import WORKER
from agent.main import CLIENT_COMMANDS
from agent_harness import running_agent
from agent_process import free_port
from client.conftest import QuietOwner
from double_helpers import save_prompt
from waiting import EVENTUALLY

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


async def started(agent: Agent, *args: str, stdout: int = asyncio.subprocess.PIPE) -> asyncio.subprocess.Process:
    env = {**os.environ, "COMFYUI_AGENT_URL": str(agent.make_url("")).rstrip("/"), "COLUMNS": "120"}
    return await asyncio.create_subprocess_exec(sys.executable, "-m", "agent", *args, env=env, cwd=REPO,
                                                stdout=stdout, stderr=asyncio.subprocess.PIPE)


async def finished(process: asyncio.subprocess.Process) -> Done:
    out, err = await asyncio.wait_for(process.communicate(), EVENTUALLY)
    assert process.returncode is not None
    return Done(process.returncode, (out or b"").decode(), err.decode())


async def line_saying(stream: asyncio.StreamReader, words: bytes) -> bytes:
    """The first line of `stream` with `words` in it; b"" when the stream ends without one."""
    while (line := await stream.readline()) and words not in line:
        pass
    return line


async def command(agent: Agent, *args: str) -> Done:
    return await finished(await started(agent, *args))


async def test_run_a_graph_with_set_and_the_outputs_land_in_out(agent: Agent, tmp_path: Path) -> None:
    graph = tmp_path / "graph.json"
    copy = {"class_type": "SaveImage", "_meta": {"title": "Second copy"},
            "inputs": {"images": ["1", 0], "filename_prefix": "copy"}}
    graph.write_text(json.dumps({**save_prompt(0x101010, "cli"), "3": copy}))
    done = await command(agent, "run", str(graph), "--set", "1.color=16711680", "--task-id", "cli-1",
                         "--out", str(tmp_path / "out"))
    assert done.code == 0, done.err
    saved = sorted((tmp_path / "out").iterdir())
    assert [path.name for path in saved] == ["cli-1_2_cli_00001_.png", "cli-1_3_copy_00001_.png"]  # the id once
    written = tmp_path / "comfyui" / "output" / "cli-1_cli_00001_.png"  # the double's own file
    assert saved[0].read_bytes() == written.read_bytes()
    assert "cli-1 succeeded" in done.out
    assert "SaveImage (2)" in done.err and "Second copy (3)" in done.err  # its bars, on stderr, by title


async def test_run_a_workflow_with_params_as_json(agent: Agent) -> None:
    done = await command(agent, "run", "txt2img", "--json", "--param", "steps=2", "--param", "width=64",
                         "--param", "height=64", "--param", "checkpoint=random-sd15.safetensors",
                         "--param", "prompt=a boat")
    assert done.code == 0, done.err
    task = json.loads(done.out)
    assert task["status"] == "succeeded" and task["params"]["prompt"] == "a boat" and task["params"]["steps"] == 2


async def test_a_workflow_s_bars_are_named_after_its_nodes(agent: Agent) -> None:
    done = await command(agent, "run", "txt2img", "--param", "steps=2", "--param", "width=64", "--param",
                         "height=64", "--param", "checkpoint=random-sd15.safetensors")
    assert done.code == 0, done.err
    assert "KSampler (3)" in done.err and "Positive prompt (6)" in done.err and "node 3" not in done.err


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
    accepted = await agent.post("/api/run", json=save_prompt(3, delay=3600),  # it ends when canceled
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


@pytest.mark.usefixtures("quick_lost_ends")
async def test_watch_waits_out_a_quiet_instance_and_follows_the_task_to_its_end(agent: Agent) -> None:
    owner = QuietOwner(agent.app[WORKER].stores, "cli-quiet")
    await owner.went_quiet()
    process = await started(agent, "watch", "cli-quiet")
    assert process.stderr is not None
    said = await asyncio.wait_for(line_saying(process.stderr, b"waiting up to"), EVENTUALLY)
    await owner.heard_again()
    await owner.ended()
    done = await finished(process)
    assert b"nothing heard from it" in said, done.err  # it said the task was quiet, and waited
    assert done.code == 0 and "cli-quiet succeeded" in done.out, done.err


async def test_a_closed_stdout_ends_the_command_quietly(agent: Agent) -> None:
    reader, writer = os.pipe()
    os.close(reader)  # the reader has gone, as `| head` goes once it has its lines
    try:
        process = await started(agent, "workflows", "--json", stdout=writer)
    finally:
        os.close(writer)
    done = await finished(process)
    assert done.code == 141 and done.err == ""  # a shell's status for SIGPIPE, as `yes | head` gives


def test_the_top_level_help_lists_every_command_and_serve_help_the_settings() -> None:
    def helped(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "agent", *args, "--help"], capture_output=True, text=True,
                              cwd=REPO, env={**os.environ, "COLUMNS": "120"}, check=False, timeout=EVENTUALLY)
        assert done.returncode == 0, done.stderr
        return done.stdout

    listed = re.findall(r"^    (\w+) +\S.*$", helped(), re.MULTILINE)  # a command and its line
    assert sorted(listed) == sorted([*CLIENT_COMMANDS, "serve", "gateway"])
    assert "--comfyui-dir" in helped("serve") and "--agent-mode" in helped("gateway")


def test_every_exit_status_names_a_kind_the_agent_has() -> None:
    import agent.api.statuses  # noqa: F401 - defines the API's own kinds (Unauthorized, NotFound)
    from agent.client.cli import EXIT_BY_KIND
    from agent.errors import kinds

    assert set(EXIT_BY_KIND) <= kinds()


def test_the_command_line_knows_every_error_kind_without_the_server() -> None:
    """The CLI never imports the server, so each kind it must name (exit status, message) lives in agent/errors."""
    from agent.api.statuses import STATUS_BY_KIND

    known = subprocess.run([sys.executable, "-c", "import json, agent.client.cli, agent.errors; "
                            "print(json.dumps(sorted(agent.errors.kinds())))"],
                           capture_output=True, text=True, check=True, timeout=EVENTUALLY)
    assert set(json.loads(known.stdout)) >= set(STATUS_BY_KIND)
