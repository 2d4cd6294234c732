"""The double's node definitions are an excerpt of what real ComfyUI 0.3.64 reported in `/object_info`."""

from __future__ import annotations

import json
from pathlib import Path

from recordings import recording

EXCERPT = Path(__file__).resolve().parents[1] / "comfy_double" / "object_info.json"


def test_every_class_the_double_defines_is_as_real_comfyui_defined_it() -> None:
    excerpt = json.loads(EXCERPT.read_text())
    full = recording("object_info_full")
    assert len(full) == 478
    assert {name: full.get(name) for name in excerpt} == excerpt
