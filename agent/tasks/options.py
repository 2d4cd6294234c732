"""How a caller wants a run done: the options of `POST /api/run` as the agent uses them, below the run itself, so
the parts a run uses (its output delivery) read them without reaching up to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent.tasks.model import Webhook


@dataclass(frozen=True)
class RunOptions:
    """`delivery`: `url`, `base64` or `none`; None for the default (`url` with an output store, else `base64`).
    `prefix`: a key prefix under the output store's own; `format` (`original`, `png`, `webp`, `jpeg`) and
    `quality`: how images are re-encoded for the caller."""

    results: bool = True
    timeout: float | None = None
    delivery: str | None = None
    prefix: str = ""
    format: str = "original"
    quality: int | None = None
    webhook: Webhook | None = None
    params: dict[str, Any] | None = None  # a workflow's parameters as used (a drawn seed included)
    workflow: str | None = None  # which workflow: `NAME@VERSION` when published
    # What ComfyUI's savers write into a PNG beside the prompt (ComfyUI's `extra_data.extra_pnginfo`): the editor's
    # `workflow`, so an output dropped back into the editor opens the graph that made it.
    pnginfo: dict[str, Any] | None = None
