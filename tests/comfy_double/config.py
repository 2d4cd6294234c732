"""Configuration of one ComfyUI test-double instance."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_UPLOAD_SIZE = 100 * 1024 * 1024  # ComfyUI's default --max-upload-size (100 MB), in bytes
# folder_paths.supported_pt_extensions: the files ComfyUI lists in a model folder
MODEL_EXTENSIONS = (".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft")


@dataclass
class DoubleConfig:
    """What a real ComfyUI takes from its command line, plus the double's fault-injection knobs.

    ``node_delay`` and ``ws_send_delay`` may be changed at run time through ``POST /__double__/control``.
    """

    input_dir: Path
    output_dir: Path
    temp_dir: Path
    checkpoints: list[str] = field(default_factory=lambda: ["random-sd15.safetensors"])
    loras: list[str] = field(default_factory=list)
    model_paths: dict[str, list[Path]] = field(default_factory=dict)  # --extra-model-paths-config: kind -> folders
    latent_previews: bool = False  # like ``--preview-method latent2rgb``: KSampler sends a preview per step
    node_delay: dict[str, float] = field(default_factory=dict)  # class_type -> seconds a node takes
    ws_send_delay: float = 0.0  # seconds to wait before every websocket frame
    version: str = "0.3.64"  # the ComfyUI release the double acts as (comfy_double.versions)
    exit_process: Callable[[int], object] = os._exit  # the "crash" fault and control "exit" (a stub in-process)

    def __post_init__(self) -> None:
        # ComfyUI compares paths with os.path.commonpath, which needs absolute directories.
        self.input_dir = Path(self.input_dir).resolve()
        self.output_dir = Path(self.output_dir).resolve()
        self.temp_dir = Path(self.temp_dir).resolve()

    def make_dirs(self) -> None:
        """Create the three directories, as ComfyUI does at start-up."""
        for path in (self.input_dir, self.output_dir, self.temp_dir):
            path.mkdir(parents=True, exist_ok=True)

    def models(self, kind: str) -> list[str]:
        """A model folder's list as ComfyUI gives it: its own models (the recorded ones) and the files of the
        extra model paths, sorted, read anew at every call (a model copied in is listed without a restart)."""
        found = set({"checkpoints": self.checkpoints, "loras": self.loras}.get(kind, []))
        for folder in self.model_paths.get(kind, []):
            found.update(str(path.relative_to(folder)) for path in folder.rglob("*")
                         if path.is_file() and path.suffix in MODEL_EXTENSIONS)
        return sorted(found)

    def directory(self, kind: str | None) -> Path | None:
        """The directory for a ``type`` of input/output/temp, None for anything else."""
        return {"input": self.input_dir, "output": self.output_dir, "temp": self.temp_dir}.get(kind or "")
