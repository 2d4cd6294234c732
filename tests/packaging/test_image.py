"""The Dockerfile and comfyui/: checked by structure and by hadolint (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from agent.api.requests import check_prompt
from agent.comfy.supervisor.nas import FOLDERS, MODEL_KINDS
from agent.install import COMFYUI_COMMIT, COMFYUI_REPO
from agent.workflows.definition import load_definition

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()
COMMIT = re.compile(r"[0-9a-f]{40}")


def instructions(keyword: str) -> list[str]:
    return [line.split(None, 1)[1] for line in DOCKERFILE.splitlines() if line.startswith(keyword + " ")]


def build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in instructions("ARG") if "=" in arg)


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_pinned_bases_and_never_latest() -> None:
    stages = instructions("FROM")
    assert len(stages) >= 3
    args = build_args()
    for stage in stages:
        image = stage.split()[0]
        image = args.get(image.strip("${}"), image)
        assert ":" in image and not image.endswith(":latest"), image
    assert "cuda" in args["PYTORCH_IMAGE"]
    assert "latest" not in DOCKERFILE


def test_comfyui_and_custom_nodes_are_pinned_to_commits() -> None:
    assert COMMIT.fullmatch(build_args()["COMFYUI_COMMIT"])
    assert build_args()["COMFYUI_COMMIT"] == COMFYUI_COMMIT  # the newcomer's installer takes the image's ComfyUI
    assert build_args()["COMFYUI_REPO"] == COMFYUI_REPO
    rows = [line.split() for line in (REPO / "comfyui" / "custom_nodes.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert "ComfyUI_essentials" in [row[0] for row in rows]
    for name, repository, commit in rows:
        assert repository.startswith("https://") and COMMIT.fullmatch(commit), name


def test_entrypoint_port_and_agent_install() -> None:
    assert instructions("ENTRYPOINT") == ['["comfyui-agent"]']
    assert instructions("EXPOSE") == ["9000"]
    assert "pip wheel" in DOCKERFILE and "/wheels/*.whl" in DOCKERFILE
    assert "COMFYUI_DIR=/comfyui" in DOCKERFILE and "NAS_DIR=/mnt/auto/comfyui" in DOCKERFILE
    assert instructions("USER") == ["1000:1000"]


def test_every_nas_model_path_is_prepared_by_the_agent() -> None:
    paths = yaml.safe_load((REPO / "comfyui" / "extra_model_paths.yaml").read_text())["nas"]
    assert paths.pop("base_path") == "${NAS_DIR}"
    paths.pop("is_default")
    assert set(paths.values()) <= set(FOLDERS)
    assert {path.removeprefix("models/") for path in paths.values() if path.startswith("models/")} == set(MODEL_KINDS)


def test_example_workflows_are_definitions_of_api_format_prompts() -> None:
    workflows = sorted((REPO / "comfyui" / "workflows").glob("*.json"))
    assert {path.stem for path in workflows} >= {"txt2img", "img2img", "warmup"}
    for path in workflows:
        definition = load_definition(path.stem, json.loads(path.read_text()))
        prompt = check_prompt(definition.graph)
        assert all("class_type" in node for node in prompt.values()), path
    declared = {path.stem: load_definition(path.stem, json.loads(path.read_text())) for path in workflows}
    txt2img = {parameter.name for parameter in declared["txt2img"].parameters}
    assert txt2img >= {"prompt", "negative_prompt", "seed", "steps", "cfg", "width", "height", "batch_size",
                       "checkpoint"}
    assert {parameter.name for parameter in declared["img2img"].parameters} >= txt2img - {"batch_size"} | {
        "image", "denoise"}
    assert "LoadImage" in json.dumps(json.loads((REPO / "comfyui" / "workflows" / "img2img.json").read_text()))
