"""The shared NAS folder, laid out before ComfyUI starts: every instance may be the first on a fresh NAS."""

from __future__ import annotations

import logging
from pathlib import Path

from agent.logs import log_event

logger = logging.getLogger("agent.supervisor")

MODEL_KINDS = ("checkpoints", "loras", "vae", "controlnet", "upscale_models", "embeddings", "clip", "clip_vision",
               "text_encoders", "diffusion_models", "unet")  # the kinds comfyui/extra_model_paths.yaml maps
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
