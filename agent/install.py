"""`comfyui-agent-install [DIR]`: a first ComfyUI for someone who has none, so that `comfyui-agent` has something
to stand in front of. The work is comfy-cli's, the ecosystem's installer (the optional `comfyui` extra): it
clones ComfyUI at the commit the Docker image pins, into DIR with a virtualenv of its own (`DIR/.venv`, which the
agent then uses), with PyTorch for the GPU this machine has, or the CPU build when it has none. This module only
chooses comfy-cli's arguments, and when the install fails, says why where it can tell (ComfyUI's repository out of
reach) and what to do instead: use a ComfyUI the machine already has."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

from agent.comfy.device import Device, detect

# The ComfyUI the image is built from (the Dockerfile's COMFYUI_COMMIT; tests/packaging checks they agree):
# 0.33.0, master of 2026-08-22, the newest the project's recordings and integration tests cover (README: the
# supported range, and how to move the pin).
COMFYUI_COMMIT = "783545f689a0af730065994b46b382ae24844c99"
COMFYUI_REPO = "https://github.com/comfyanonymous/ComfyUI.git"
# ComfyUI 0.3.64, the oldest supported (`--commit a125cd84b054a57729b5eecab930ca9408719832`), imports these without
# listing them in its requirements.txt (app/frontend_management.py); 0.33.0 lists them.
UNLISTED_REQUIREMENTS = ("requests",)
_DEVICE_FLAGS = {Device.NVIDIA: "--nvidia", Device.AMD: "--amd", Device.APPLE: "--m-series", Device.CPU: "--cpu"}
_GIT_PORTS = {"http": 80, "https": 443, "ssh": 22, "git": 9418}
_SCP_LIKE = re.compile(r"[\w.-]+@(?P<host>[\w.-]+):.*")  # git@github.com:owner/repo.git
REACH_TIMEOUT = 5.0
INSTEAD = ("  Have a ComfyUI already? COMFYUI_DIR=/path/to/ComfyUI comfyui-agent launches it;\n"
           "  COMFYUI_URL=http://host:port comfyui-agent uses one that is running.")


def install_command(directory: Path, device: Device, repo: str = COMFYUI_REPO,
                    commit: str = COMFYUI_COMMIT) -> list[str]:
    """comfy-cli's command line. No ComfyUI-Manager: an API server installs no nodes at run time."""
    return [sys.executable, "-m", "comfy_cli", "--skip-prompt", "--workspace", str(directory), "install",
            "--url", repo, "--version", "nightly", "--commit", commit, _DEVICE_FLAGS[device], "--skip-manager"]


def completion_command(directory: Path) -> list[str]:
    """What comfy-cli leaves out: ComfyUI's unlisted requirements, into the checkout's own virtualenv."""
    return [str(directory / ".venv" / "bin" / "python"), "-m", "pip", "install", "--quiet", *UNLISTED_REQUIREMENTS]


def repo_endpoint(repo: str) -> tuple[str, int] | None:
    """The host and port a git URL is fetched from; None for a repository on this machine."""
    parts = urlsplit(repo)
    if parts.scheme in _GIT_PORTS and parts.hostname:
        return parts.hostname, parts.port or _GIT_PORTS[parts.scheme]
    scp = _SCP_LIKE.fullmatch(repo)
    return (scp["host"], 22) if scp and not parts.scheme else None


def unreachable(repo: str) -> str | None:
    """Why ComfyUI's repository cannot be fetched from here, when that is why the install failed."""
    endpoint = repo_endpoint(repo)
    if endpoint is None:
        return None
    try:
        socket.create_connection(endpoint, timeout=REACH_TIMEOUT).close()
    except OSError as exc:
        return f"{endpoint[0]}:{endpoint[1]} cannot be reached from this machine ({exc.strerror or exc})"
    return None


def _give_up(what: str, code: int, reason: str | None) -> NoReturn:
    """One short message after comfy-cli's or pip's own output: what failed, why if known, what to do instead."""
    print(f"comfyui-agent-install: the install failed: {what}{f'; {reason}' if reason else ''}.\n{INSTEAD}",
          file=sys.stderr)
    raise SystemExit(code or 1)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="comfyui-agent-install", description=__doc__)
    parser.add_argument("directory", nargs="?", default="ComfyUI", type=Path, help="where ComfyUI goes (./ComfyUI)")
    parser.add_argument("--repo", default=os.environ.get("COMFYUI_REPO", COMFYUI_REPO),
                        help="ComfyUI's git repository, or a local mirror of it [COMFYUI_REPO]")
    parser.add_argument("--commit", default=os.environ.get("COMFYUI_COMMIT", COMFYUI_COMMIT),
                        help="the commit to install [COMFYUI_COMMIT]")
    parser.add_argument("--device", choices=[device.value for device in Device],
                        help="the PyTorch build to install (default: what this machine has)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    options = _parser().parse_args(argv)
    directory: Path = options.directory.absolute()
    if (directory / "main.py").is_file():
        print(f"comfyui-agent-install: ComfyUI is already in {directory}; start the agent with "
              f"COMFYUI_DIR={directory} comfyui-agent")
        return
    if importlib.util.find_spec("comfy_cli") is None:
        print("comfyui-agent-install: comfy-cli is missing: pip install 'comfyui-fc-agent[comfyui]'", file=sys.stderr)
        raise SystemExit(2)
    device = Device(options.device) if options.device else detect()
    print(f"comfyui-agent-install: ComfyUI {options.commit[:8]} into {directory}, PyTorch for {device.value}",
          flush=True)
    done = subprocess.run(install_command(directory, device, options.repo, options.commit), check=False)
    if done.returncode != 0 or not (directory / "main.py").is_file():
        _give_up(f"comfy-cli exited with status {done.returncode}" if done.returncode else
                 f"comfy-cli left no ComfyUI in {directory}", done.returncode, unreachable(options.repo))
    completed = subprocess.run(completion_command(directory), check=False)
    if completed.returncode != 0:
        _give_up(f"pip could not install {', '.join(UNLISTED_REQUIREMENTS)} into {directory / '.venv'}",
                 completed.returncode, None)
    print(f"comfyui-agent-install: done; start the agent with COMFYUI_DIR={directory} comfyui-agent")


if __name__ == "__main__":
    main()
