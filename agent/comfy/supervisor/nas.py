"""The shared NAS folder, laid out before ComfyUI starts: every instance may be the first on a fresh NAS; and
ComfyUI told to read its models and custom nodes there (an `--extra-model-paths-config` the agent writes), so a
ComfyUI installed by hand sees them as the image's does."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from agent.logs import log_event
from agent.model_folders import MODEL_KINDS

logger = logging.getLogger("agent.supervisor")

FOLDERS = ("input", "output", "tasks", "custom_nodes", *(f"models/{kind}" for kind in MODEL_KINDS))


def prepare_nas(nas_dir: Path) -> None:
    """Create what is missing, touch nothing that exists; a NAS that refuses is logged, and ComfyUI still starts."""
    try:
        for folder in FOLDERS:
            (nas_dir / folder).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log_event(logger, "nas.prepare_failed", level=logging.ERROR, nas_dir=nas_dir, error=exc)


def prepare_user_folder(folder: Path) -> None:
    """ComfyUI refuses a `--user-directory` that does not exist; one that cannot be made shows in its own error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        log_event(logger, "comfyui.user_folder_failed", level=logging.ERROR, folder=folder, error=exc)


def model_paths(nas_dir: Path) -> str:
    """ComfyUI's extra model paths for the NAS (YAML; written as JSON, which YAML reads): the NAS is the default
    place of every model kind, so a model put there by anyone is listed by every instance."""
    paths = {"base_path": str(nas_dir), "is_default": True, **{kind: f"models/{kind}" for kind in MODEL_KINDS},
             "custom_nodes": "custom_nodes"}
    return json.dumps({"nas": paths}, indent=2)


def write_model_paths(nas_dir: Path, folder: Path) -> Path | None:
    """The config in this instance's own folder; None (logged) when it cannot be written: ComfyUI then starts
    with its own model folders only."""
    path = folder / "extra_model_paths.nas.yaml"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text(model_paths(nas_dir))
    except OSError as exc:
        log_event(logger, "nas.model_paths_failed", level=logging.ERROR, path=path, error=exc)
        return None
    return path
