"""The image's own shell steps, run here as far as a machine without a Docker engine or GitHub allows: the sources
stage fetches ComfyUI and each custom node at its commit (from local repositories standing in for GitHub), and
the worker stage installs their requirements without touching the base image's PyTorch (a stand-in `pip` that
writes down what it was asked)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from dockerfile import stage

RUN = re.compile(r"^RUN (.*?)(?<!\\)$", re.MULTILINE | re.DOTALL)
COMFYUI_REQUIREMENTS = "torch\ntorchsde\ntorchvision\ntorchaudio>=2.4\nnumpy>=1.25.0\ncomfy-kitchen==0.2.31\n"


def runs(stage_name: str) -> list[str]:
    """The stage's RUN commands, each as the shell gets it (continuation lines kept, comments left out)."""
    text = "\n".join(line for line in stage(stage_name).splitlines() if not line.lstrip().startswith("#"))
    return RUN.findall(text)


def shell(command: str, cwd: Path, env: dict[str, str]) -> None:
    """As the stage's SHELL runs it."""
    subprocess.run(["/bin/bash", "-o", "pipefail", "-c", command], cwd=cwd, env={**os.environ, **env}, check=True,
                   timeout=120)


def repository(path: Path, files: dict[str, str]) -> str:
    """A git repository with one commit of `files` (a second commit on top, so the fetched one is not the tip);
    returns the first commit."""
    path.mkdir(parents=True)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(path)]
    subprocess.run([*git, "init", "-q"], check=True)
    for name, content in files.items():
        (path / name).write_text(content)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "pinned"], check=True)
    pinned = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True, text=True).stdout.strip()
    (path / "later.txt").write_text("after the pin\n")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "later"], check=True)
    subprocess.run([*git, "config", "uploadpack.allowAnySHA1InWant", "true"], check=True)  # as GitHub allows
    return pinned


def test_the_sources_stage_fetches_comfyui_and_each_node_at_its_commit(tmp_path: Path) -> None:
    comfyui = repository(tmp_path / "ComfyUI", {"main.py": "", "requirements.txt": COMFYUI_REQUIREMENTS})
    node = repository(tmp_path / "Node", {"__init__.py": "", "requirements.txt": "numba\n"})
    src = tmp_path / "src"
    src.mkdir()
    (src / "custom_nodes.txt").write_text(f"# name repo commit\n\nSomeNode file://{tmp_path / 'Node'} {node}\n")
    [_apt, fetch] = runs("sources")
    shell(fetch, src, {"COMFYUI_REPO": f"file://{tmp_path / 'ComfyUI'}", "COMFYUI_COMMIT": comfyui})
    assert sorted(path.name for path in (src / "comfyui").iterdir()) == ["custom_nodes", "main.py", "requirements.txt"]
    assert sorted(path.name for path in (src / "comfyui" / "custom_nodes" / "SomeNode").iterdir()) == [
        "__init__.py", "requirements.txt"]  # the pinned commit, not the later one, and no .git


def test_the_worker_installs_the_requirements_but_never_torch(tmp_path: Path) -> None:
    comfyui = tmp_path / "comfyui"
    (comfyui / "custom_nodes" / "SomeNode").mkdir(parents=True)
    (comfyui / "requirements.txt").write_text(COMFYUI_REQUIREMENTS)
    (comfyui / "custom_nodes" / "SomeNode" / "requirements.txt").write_text("numba\n")
    bin_dir, asked = tmp_path / "bin", tmp_path / "asked"
    bin_dir.mkdir()
    (bin_dir / "pip").write_text(f'#!/bin/bash\nfor arg; do [ -f "$arg" ] && cat "$arg" >> {asked}; done\n')
    (bin_dir / "pip").chmod(0o755)
    [install] = [command for command in runs("worker") if "requirements.txt" in command]
    temp = tmp_path / "tmp"
    temp.mkdir()
    here = re.sub(r"(?<=\s)/comfyui/", f"{comfyui}/", re.sub(r"(?<=\s)/tmp/", f"{temp}/", install))
    shell(here, tmp_path, {"PATH": f"{bin_dir}:{os.environ['PATH']}"})
    assert asked.read_text().split() == ["torchsde", "numpy>=1.25.0", "comfy-kitchen==0.2.31", "numba"]
    assert not list(temp.iterdir())  # the filtered copy is removed
