"""Two instances on one NAS folder, ComfyUI itself installed there (as FC templates lay it out): each ComfyUI keeps
its own `user/` and database, so the second neither shares the first's settings nor fails to lock its database
(ComfyUI 0.33.0: "Could not acquire lock on database")."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent_process import AgentProcess, real_comfyui_agent

pytestmark = pytest.mark.integration

SHARED_DATABASE_SIGNS = ("Could not acquire lock on database", "database is locked")


def comfyui_flag(agent: AgentProcess, flag: str) -> str:
    """A flag's value on the command line of the ComfyUI the agent launched."""
    args = Path(f"/proc/{agent.comfyui_pid()}/cmdline").read_bytes().decode().split("\0")
    return args[args.index(flag) + 1]


def run_on(agent: AgentProcess, color: int) -> None:
    prompt = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": color}},
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "shared_nas"}},
    }
    response = agent.run(prompt)
    assert response.status_code == 200, response.text


def test_two_instances_on_one_nas_keep_their_own_comfyui_state(tmp_path: Path) -> None:
    nas = tmp_path / "nas"
    nas.mkdir()
    (nas / "ComfyUI").symlink_to(Path(os.environ["COMFYUI_DIR"]).resolve())
    temps = [tmp_path / f"instance{n}-tmp" for n in range(2)]  # each FC instance has a /tmp of its own
    for temp in temps:
        temp.mkdir()

    def instance(n: int) -> dict[str, str]:
        # COMFYUI_USER_DIR left to its default (the fixture's own is taken away)
        return {"NAS_DIR": str(nas), "COMFYUI_DIR": str(nas / "ComfyUI"), "COMFYUI_USER_DIR": "",
                "TMPDIR": str(temps[n])}

    with real_comfyui_agent(tmp_path / "first", **instance(0)) as first, \
            real_comfyui_agent(tmp_path / "second", **instance(1)) as second:
        for n, agent in enumerate((first, second)):
            run_on(agent, 0x102030 + n)
        assert [comfyui_flag(agent, "--user-directory") for agent in (first, second)] == [
            str(temp / "comfyui-user") for temp in temps]
        assert {comfyui_flag(agent, "--database-url") for agent in (first, second)} == {"sqlite:///:memory:"}
        logs = first.log() + second.log()
    assert not [sign for sign in SHARED_DATABASE_SIGNS if sign in logs]
