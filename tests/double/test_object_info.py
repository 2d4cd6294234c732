"""The double's node definitions are an excerpt of what each recorded real ComfyUI reported in `/object_info`."""

from __future__ import annotations

import pytest

from comfy_double.nodedefs import object_info
from recordings import RECORDED_VERSIONS, recording

CLASSES = {"0.3.64": 478, "0.33.0": 887}  # how many node classes each release reported


@pytest.mark.parametrize("version", RECORDED_VERSIONS)
def test_every_class_the_double_defines_is_as_real_comfyui_defined_it(version: str) -> None:
    excerpt = object_info(version)
    full = recording("object_info_full", version)
    assert len(full) == CLASSES[version]
    assert {name: full.get(name) for name in excerpt} == excerpt


def test_both_versions_define_the_same_classes() -> None:
    assert list(object_info(RECORDED_VERSIONS[0])) == list(object_info(RECORDED_VERSIONS[-1]))
