"""What each recorded ComfyUI release does differently, as its recordings show (``tests/fixtures/comfyui-*/``,
whose README lists the changes). The double acts as one of them: ``DoubleConfig.version``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import MAX_UPLOAD_SIZE

_MODEL_FOLDERS = [
    "checkpoints", "configs", "loras", "vae", "text_encoders", "diffusion_models", "clip_vision", "style_models",
    "embeddings", "diffusers", "vae_approx", "controlnet", "gligen", "upscale_models", "custom_nodes",
    "hypernetworks", "photomaker", "classifiers", "model_patches", "audio_encoders",
]


@dataclass(frozen=True)
class Version:
    name: str
    object_info: str  # the file of node definitions, an excerpt of this release's /object_info
    system: dict[str, Any]  # /system_stats values that name the release
    features: dict[str, Any]  # /features, also the websocket's feature_flags reply
    model_folders: list[str]
    strict_prompt_ids: bool = False  # a client prompt_id must be a canonical lowercase UUID (invalid_prompt_id)
    missing_node_type: bool = False  # an unknown or absent class_type is missing_node_type, not invalid_prompt
    create_time: bool = False  # extra_data gets create_time (ms) when a prompt is queued
    jobs: bool = False  # /api/jobs and /api/jobs/{id}


V0_3_64 = Version(
    name="0.3.64",
    object_info="object_info.json",
    system={"comfyui_version": "0.3.64", "required_frontend_version": "1.27.10",
            "installed_templates_version": "0.1.95", "required_templates_version": "0.1.95"},
    features={"supports_preview_metadata": True, "max_upload_size": MAX_UPLOAD_SIZE},
    model_folders=_MODEL_FOLDERS,
)

V0_33_0 = Version(
    name="0.33.0",
    object_info="object_info-0.33.0.json",
    system={"comfyui_version": "0.33.0", "required_frontend_version": "1.49.6",
            "installed_templates_version": "0.11.44", "required_templates_version": "0.11.44",
            "comfy_package_versions": [
                {"name": "comfyui-frontend-package", "installed": "1.49.6", "required": "1.49.6"},
                {"name": "comfyui-workflow-templates", "installed": "0.11.44", "required": "0.11.44"},
                {"name": "comfyui-embedded-docs", "installed": "0.5.10", "required": "0.5.10"},
                {"name": "comfy-kitchen", "installed": "0.2.31", "required": "0.2.31"},
                {"name": "comfy-aimdo", "installed": "0.4.13", "required": "0.4.13"}],
            "deploy_environment": "local-git"},
    features={"supports_preview_metadata": True, "supports_model_type_tags": True, "max_upload_size": MAX_UPLOAD_SIZE,
              "extension": {"manager": {"supports_v4": True}}, "node_replacements": True, "assets": False},
    model_folders=[*_MODEL_FOLDERS[:14], "latent_upscale_models", "custom_nodes", "datasets", *_MODEL_FOLDERS[15:],
                   "background_removal", "frame_interpolation", "geometry_estimation", "optical_flow", "detection"],
    strict_prompt_ids=True,
    missing_node_type=True,
    create_time=True,
    jobs=True,
)

VERSIONS = {version.name: version for version in (V0_3_64, V0_33_0)}
OLDEST = V0_3_64.name
