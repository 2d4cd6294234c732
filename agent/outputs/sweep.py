"""ComfyUI's output and temp folders, kept from growing forever on the NAS every instance shares: files older
than `TASK_TTL` are removed (a task's record is gone by then, so nothing points at them any more). Only the kinds
of file save nodes write (images, videos, audio, 3D models) are touched: a checkpoint or LoRA saved into
`output/`, a latent, a workflow, anything else stays. Instances sweeping the same folder at once is harmless."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

SWEPT = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif", ".mp4", ".webm", ".mov", ".mkv", ".avi", ".flac",
                   ".mp3", ".wav", ".ogg", ".opus", ".m4a", ".glb", ".gltf", ".obj"})


def _expired(path: str, before: float) -> bool:
    try:
        return os.stat(path).st_mtime < before
    except OSError:
        return False


def sweep_outputs(folders: Iterable[Path], older_than: float, now: float) -> int:
    """Remove the old output files under `folders`; how many went. Blocking: run it in a thread."""
    removed = 0
    for folder in folders:
        for root, subfolders, names in os.walk(folder):
            subfolders[:] = [name for name in subfolders if not name.startswith(".")]
            for name in names:
                path = os.path.join(root, name)
                if os.path.splitext(name)[1].lower() in SWEPT and _expired(path, now - older_than):
                    try:
                        os.unlink(path)
                    except OSError:
                        continue  # gone already (another instance), or not ours to remove
                    removed += 1
    return removed
