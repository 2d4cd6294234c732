"""A newcomer's first ComfyUI: the device is read from the machine, comfy-cli gets the image's commit and the
matching PyTorch, and the agent then launches that checkout with its own virtualenv (and `--cpu` without a GPU).

The install itself needs a ComfyUI git repository: with COMFYUI_INSTALL_REPO pointing at one (a local mirror
here, where no git host is reachable) and comfy-cli installed, the last test runs it for real and starts the agent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.comfy.device import Device, detect
from agent.comfy.supervisor.supervisor import comfyui_args
from agent.config import Settings, load_settings
from agent.install import COMFYUI_COMMIT, completion_command, install_command, repo_endpoint
from agent_process import AgentProcess, free_port
from double_helpers import save_prompt

REPO = Path(__file__).resolve().parents[2]
# comfy-cli as it fails without a network: its own long traceback, then a non-zero status.
FAILING_COMFY_CLI = """import sys
print("Traceback (most recent call last):\\n" + "  File ...\\n" * 40
      + "git.exc.GitCommandError: Cmd('git') failed: could not resolve host", file=sys.stderr)
sys.exit(1)
"""


@pytest.mark.parametrize(("files", "system", "machine", "device"), [
    (["nvidiactl", "nvidia0"], "linux", "x86_64", Device.NVIDIA),
    (["kfd", "dri"], "linux", "x86_64", Device.AMD),
    (["dri", "tty0"], "linux", "x86_64", Device.CPU),
    ([], "linux", "aarch64", Device.CPU),
    ([], "darwin", "arm64", Device.APPLE),
    ([], "darwin", "x86_64", Device.CPU),
])
def test_the_device_is_read_from_the_machine(tmp_path: Path, files: list[str], system: str, machine: str,
                                             device: Device) -> None:
    for name in files:
        (tmp_path / name).touch()
    assert detect(tmp_path, system, machine) is device


@pytest.mark.parametrize(("device", "flag"), [(Device.NVIDIA, "--nvidia"), (Device.CPU, "--cpu"),
                                              (Device.AMD, "--amd"), (Device.APPLE, "--m-series")])
def test_comfy_cli_gets_the_image_s_commit_and_the_machine_s_torch(device: Device, flag: str) -> None:
    command = install_command(Path("/x/ComfyUI"), device)
    assert command[:3] == [sys.executable, "-m", "comfy_cli"]
    assert command[command.index("--workspace") + 1] == "/x/ComfyUI"
    assert command[command.index("--commit") + 1] == COMFYUI_COMMIT
    assert flag in command and "--skip-manager" in command and "--skip-prompt" in command
    assert command.index("--skip-prompt") < command.index("install")  # a global option of comfy-cli


def test_what_comfyui_forgot_to_list_goes_into_its_own_virtualenv() -> None:
    command = completion_command(Path("/x/ComfyUI"))
    assert command[:4] == ["/x/ComfyUI/.venv/bin/python", "-m", "pip", "install"] and "requests" in command


def test_cpu_only_without_a_gpu_unless_told_otherwise(tmp_path: Path) -> None:
    auto = Settings(comfyui_dir=tmp_path)
    assert "--cpu" in comfyui_args(auto.launch, Device.CPU)
    assert "--cpu" not in comfyui_args(auto.launch, Device.NVIDIA)
    assert "--cpu" not in comfyui_args(Settings(comfyui_device="gpu").launch, Device.CPU)
    assert "--cpu" in comfyui_args(Settings(comfyui_device="cpu").launch, Device.NVIDIA)
    assert comfyui_args(Settings(comfyui_args=("--cpu",)).launch, Device.CPU).count("--cpu") == 1


def test_the_checkout_s_own_virtualenv_runs_comfyui(tmp_path: Path) -> None:
    assert Settings(comfyui_dir=tmp_path).comfyui_interpreter == sys.executable
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    assert Settings(comfyui_dir=tmp_path).comfyui_interpreter == str(python)
    assert Settings(comfyui_dir=tmp_path, comfyui_python="/usr/bin/python3").comfyui_interpreter == "/usr/bin/python3"


def test_an_empty_comfyui_dir_names_the_installer(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="comfyui-agent-install"):
        load_settings([], {"COMFYUI_DIR": str(tmp_path)})


def test_an_existing_checkout_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("")
    done = subprocess.run([sys.executable, "-m", "agent.install", str(tmp_path)], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and "already" in done.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["main.py"]


@pytest.mark.parametrize(("repo", "endpoint"), [
    ("https://github.com/comfyanonymous/ComfyUI.git", ("github.com", 443)),
    ("http://mirror.local:8080/ComfyUI.git", ("mirror.local", 8080)),
    ("ssh://git@example.com:2222/ComfyUI.git", ("example.com", 2222)),
    ("git@github.com:comfyanonymous/ComfyUI.git", ("github.com", 22)),
    ("/srv/mirrors/ComfyUI.git", None),
    ("file:///srv/mirrors/ComfyUI.git", None),
])
def test_the_host_a_repository_is_fetched_from(repo: str, endpoint: tuple[str, int] | None) -> None:
    assert repo_endpoint(repo) == endpoint


def run_install_with_a_failing_comfy_cli(tmp_path: Path, repo: str) -> subprocess.CompletedProcess[str]:
    fake = tmp_path / "fake" / "comfy_cli"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "__main__.py").write_text(FAILING_COMFY_CLI)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake.parent), str(REPO)])}
    return subprocess.run([sys.executable, "-m", "agent.install", str(tmp_path / "ComfyUI"), "--repo", repo,
                           "--device", "cpu"], capture_output=True, text=True, check=False, env=env)


def test_an_install_that_cannot_reach_the_repository_says_so_and_what_to_do_instead(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the repository is out of reach, as without a network
    done = run_install_with_a_failing_comfy_cli(tmp_path, f"https://127.0.0.1:{port}/ComfyUI.git")
    assert done.returncode == 1
    ours = done.stderr.split("could not resolve host\n", 1)[1]  # what follows comfy-cli's own output
    assert ours.startswith("comfyui-agent-install: the install failed: comfy-cli exited with status 1; ")
    assert f"127.0.0.1:{port} cannot be reached" in ours
    assert "COMFYUI_DIR=/path/to/ComfyUI" in ours and "COMFYUI_URL=http://host:port" in ours
    assert ours.count("\n") == 3 and "Traceback" not in ours


def test_an_install_that_fails_otherwise_still_says_what_to_do_instead(tmp_path: Path) -> None:
    done = run_install_with_a_failing_comfy_cli(tmp_path, str(tmp_path / "mirror"))
    ours = done.stderr.split("could not resolve host\n", 1)[1]
    assert done.returncode == 1 and ours.startswith("comfyui-agent-install: the install failed: comfy-cli exited")
    assert "cannot be reached" not in ours and "COMFYUI_DIR=" in ours and "COMFYUI_URL=" in ours


@pytest.mark.skipif(not os.environ.get("COMFYUI_INSTALL_REPO"), reason="COMFYUI_INSTALL_REPO names no repository")
@pytest.mark.timeout(3600)  # comfy-cli installs PyTorch and ComfyUI's requirements
def test_a_newcomer_gets_a_running_agent_in_front_of_a_fresh_comfyui(tmp_path: Path) -> None:
    pytest.importorskip("comfy_cli")
    target = tmp_path / "ComfyUI"
    commit = os.environ.get("COMFYUI_INSTALL_COMMIT", COMFYUI_COMMIT)
    subprocess.run([sys.executable, "-m", "agent.install", str(target), "--repo",
                    os.environ["COMFYUI_INSTALL_REPO"], "--commit", commit], check=True)
    assert (target / "main.py").is_file() and (target / ".venv" / "bin" / "python").is_file()
    agent = AgentProcess(tmp_path, {"COMFYUI_DIR": str(target), "COMFYUI_PORT": str(free_port())})
    try:
        agent.wait_ready(timeout=300)
        reply = agent.run(save_prompt(0x336699, "newcomer"), timeout=120)
        assert reply.status_code == 200, reply.text
        assert reply.json()["2"]["results"][0].startswith("iVBOR")
        assert "cpu=True" in agent.log() or detect() is not Device.CPU
    finally:
        agent.stop()
