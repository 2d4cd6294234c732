"""The Dockerfile and comfyui/: checked by structure and by hadolint (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import yaml

from agent.api.requests import check_prompt
from agent.comfy.device import Device
from agent.comfy.supervisor.nas import FOLDERS, write_model_paths
from agent.comfy.supervisor.supervisor import comfyui_args
from agent.config import Settings
from agent.install import COMFYUI_COMMIT, COMFYUI_REPO
from agent.model_folders import MODEL_KINDS
from agent.workflows.definition import load_definition
from dockerfile import DOCKERFILE, REPO, final_stage, instructions, run_lines, stage, stages

COMMIT = re.compile(r"[0-9a-f]{40}")


def build_args() -> dict[str, str]:
    return dict(arg.split("=", 1) for arg in instructions("ARG") if "=" in arg)


def test_hadolint_is_clean() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_multi_stage_with_pinned_bases_and_never_latest() -> None:
    bases = instructions("FROM")
    assert len(bases) >= 3
    args = build_args()
    for base in bases:
        image = base.split()[0]
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
    final = final_stage()
    assert instructions("ENTRYPOINT", final) == ['["comfyui-agent"]']
    assert instructions("CMD", final) == []  # the server: `comfyui-agent` bare
    assert instructions("EXPOSE", final) == ["9000"]
    assert "pip wheel" in DOCKERFILE and "/wheels/*.whl" in final
    assert "COMFYUI_DIR=/comfyui" in final and "NAS_DIR=/mnt/auto/comfyui" in final
    assert instructions("USER", final) == ["1000:1000"]


def test_the_default_target_is_still_the_gpu_image() -> None:
    # `docker build .` makes the last stage: ComfyUI on the CUDA PyTorch base, whatever stages come before it
    final = final_stage()
    assert instructions("FROM", final)[0].split()[0] == "${PYTORCH_IMAGE}"
    assert "COPY --from=sources /src/comfyui /comfyui" in final
    assert "AGENT_MODE" not in final  # the worker, the default mode


def test_gateway_target_is_the_agent_alone() -> None:
    gateway = stage("gateway")
    assert [name for name, _ in stages()].index("gateway") < len(stages()) - 1
    assert instructions("FROM", gateway)[0].split()[0] == "${PYTHON_IMAGE}"
    assert "COPY --from=agent /wheels /wheels" in gateway and "pip install --no-cache-dir /wheels/*.whl" in gateway
    commands = run_lines(gateway).lower()
    for absent in ("torch", "comfyui/requirements", "custom_nodes", "--from=sources", "apt-get"):
        assert absent not in commands, absent
    assert instructions("ENTRYPOINT", gateway) == ['["comfyui-agent"]']
    assert instructions("CMD", gateway) == ['["gateway"]']
    assert instructions("EXPOSE", gateway) == ["9000"]
    assert instructions("USER", gateway) == ["1000:1000"]
    assert "AGENT_MODE=gateway" in gateway and "NAS_DIR=/mnt/auto/comfyui" in gateway
    # the workflows it describes at /api/workflows, the worker's own
    [workflows] = re.findall(r"WORKFLOWS_DIR=(\S+)", gateway)
    assert f"COPY comfyui/workflows {workflows}" in gateway


def test_comfyui_is_told_of_every_nas_folder_the_agent_prepares(tmp_path: Path) -> None:
    written = write_model_paths(Path("/mnt/nas"), tmp_path / "user")
    assert written is not None
    paths = yaml.safe_load(written.read_text())["nas"]  # as ComfyUI's extra_model_paths loader reads it
    assert (paths.pop("base_path"), paths.pop("is_default")) == ("/mnt/nas", True)
    assert set(paths.values()) <= set(FOLDERS)
    assert {path.removeprefix("models/") for path in paths.values() if path.startswith("models/")} == set(MODEL_KINDS)
    args = comfyui_args(Settings(nas_dir=Path("/mnt/nas")).launch, Device.NVIDIA, written)
    assert args[args.index("--extra-model-paths-config") + 1] == str(written)
    assert "--extra-model-paths-config" not in comfyui_args(Settings().launch, Device.NVIDIA)
    assert write_model_paths(Path("/mnt/nas"), Path("/proc/no-such-folder")) is None  # logged; ComfyUI still starts


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
