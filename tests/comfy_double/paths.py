"""ComfyUI's folder_paths helpers that clients can observe: annotated names and the save counter."""

from __future__ import annotations

import os
import time

from .config import DoubleConfig

_ANNOTATIONS = {"[output]": "output", "[input]": "input", "[temp]": "temp"}


def annotated_filepath(name: str, config: DoubleConfig) -> tuple[str, str | None]:
    """Split ``"x.png [output]"`` into the name and the annotated directory (None without annotation)."""
    for suffix, kind in _ANNOTATIONS.items():
        if name.endswith(suffix):
            return name[: -len(suffix) - 1], str(config.directory(kind))
    return name, None


def get_annotated_filepath(name: str, config: DoubleConfig) -> str:
    """The file a LoadImage name refers to: annotated directory, else the input directory."""
    name, base_dir = annotated_filepath(name, config)
    return os.path.join(base_dir or str(config.input_dir), name)


def exists_annotated_filepath(name: str, config: DoubleConfig) -> bool:
    """Whether a LoadImage name refers to an existing file (``sub/name`` works; ``name [input]`` must be top level)."""
    return os.path.exists(get_annotated_filepath(name, config))


def _compute_vars(prefix: str, width: int, height: int) -> str:
    now = time.localtime()
    for var, value in (
        ("%width%", str(width)),
        ("%height%", str(height)),
        ("%year%", str(now.tm_year)),
        ("%month%", str(now.tm_mon).zfill(2)),
        ("%day%", str(now.tm_mday).zfill(2)),
        ("%hour%", str(now.tm_hour).zfill(2)),
        ("%minute%", str(now.tm_min).zfill(2)),
        ("%second%", str(now.tm_sec).zfill(2)),
    ):
        prefix = prefix.replace(var, value)
    return prefix


def _counter_of(filename: str, prefix: str) -> int | None:
    """The counter of an existing ``prefix_00007_.png``, None if the file is not one of the prefix's."""
    head = filename[: len(prefix) + 1]
    if os.path.normcase(head[:-1]) != os.path.normcase(prefix) or head[-1:] != "_":
        return None
    try:
        return int(filename[len(prefix) + 1 :].split("_", maxsplit=1)[0])
    except ValueError:
        return 0


def get_save_image_path(prefix: str, output_dir: str, width: int, height: int) -> tuple[str, str, int, str]:
    """(folder, file prefix, next counter, subfolder) for SaveImage; a ``/`` in the prefix makes a subfolder."""
    if "%" in prefix:
        prefix = _compute_vars(prefix, width, height)
    subfolder = os.path.dirname(os.path.normpath(prefix))
    filename = os.path.basename(os.path.normpath(prefix))
    folder = os.path.join(output_dir, subfolder)
    if os.path.commonpath((output_dir, os.path.abspath(folder))) != output_dir:
        raise Exception(  # ComfyUI raises a bare Exception with this text
            "**** ERROR: Saving image outside the output folder is not allowed."
            f"\n full_output_folder: {os.path.abspath(folder)}\n         output_dir: {output_dir}"
        )
    os.makedirs(folder, exist_ok=True)
    counters = [c for c in (_counter_of(f, filename) for f in os.listdir(folder)) if c is not None]
    return folder, filename, max(counters, default=0) + 1, subfolder
