"""Node definitions as ComfyUI's ``/object_info`` reports them, for the classes the double implements.

``object_info.json`` (0.3.64) and ``object_info-VERSION.json`` are verbatim excerpts of real servers'
``/object_info``; the file and model lists inside them are replaced by live ones, as ComfyUI computes them on
every call.
"""

from __future__ import annotations

import copy
import json
import mimetypes
import os
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, cast

from .config import DoubleConfig
from .versions import VERSIONS


@cache
def object_info(version: str) -> dict[str, dict[str, Any]]:
    """The excerpt of that version's ``/object_info`` (read once; callers copy what they change)."""
    path = Path(__file__).with_name(VERSIONS[version].object_info)
    return cast("dict[str, dict[str, Any]]", json.loads(path.read_text()))


def input_files(config: DoubleConfig) -> list[str]:
    """Top-level files of the input directory (LoadImageMask's list; subfolders are not listed)."""
    root = config.input_dir
    return sorted(f for f in os.listdir(root) if os.path.isfile(os.path.join(root, f)))


def input_images(config: DoubleConfig) -> list[str]:
    """LoadImage's list: the input files whose extension maps to an ``image/*`` mimetype."""
    return [f for f in input_files(config) if (mimetypes.guess_type(f, strict=False)[0] or "").startswith("image/")]


_LIVE_LISTS: dict[tuple[str, str], Callable[[DoubleConfig], list[str]]] = {
    ("LoadImage", "image"): input_images,
    ("LoadImageMask", "image"): input_files,
    ("CheckpointLoaderSimple", "ckpt_name"): lambda config: config.models("checkpoints"),
    ("LoraLoader", "lora_name"): lambda config: config.models("loras"),
}


class NodeDefs:
    """Looks up node classes; an unknown class does not exist, as on a ComfyUI without that custom node."""

    def __init__(self, config: DoubleConfig) -> None:
        self._config = config
        self._info = object_info(config.version)

    def __contains__(self, class_type: object) -> bool:
        return class_type in self._info

    def names(self) -> list[str]:
        """All class names, in ComfyUI's registration order."""
        return list(self._info)

    def info(self, class_type: str) -> dict[str, Any]:
        """The ``/object_info`` entry, with today's file and model lists."""
        info = copy.deepcopy(self._info[class_type])
        for (owner, name), lister in _LIVE_LISTS.items():
            if owner == class_type:
                info["input"]["required"][name][0] = lister(self._config)
        return info

    def input_types(self, class_type: str) -> dict[str, Any]:
        """``INPUT_TYPES()``: the required/optional/hidden input specs."""
        return cast("dict[str, Any]", self.info(class_type)["input"])

    def return_types(self, class_type: str) -> tuple[str, ...]:
        """``RETURN_TYPES`` (a tuple, so a bad output index fails with the same message as in ComfyUI)."""
        return tuple(self._info[class_type]["output"])

    def is_output_node(self, class_type: str) -> bool:
        """Whether the class is an ``OUTPUT_NODE``."""
        return bool(self._info[class_type]["output_node"])


def input_info(types: dict[str, Any], name: str) -> tuple[object, str | None, dict[str, Any]]:
    """``get_input_info``: an input's type, category and extra options (``None`` category if undeclared)."""
    for category in ("required", "optional", "hidden"):
        spec = types.get(category, {}).get(name)
        if spec is not None:
            if category == "hidden":
                return spec, category, {}
            return spec[0], category, spec[1] if len(spec) > 1 else {}
    return None, None, {}
