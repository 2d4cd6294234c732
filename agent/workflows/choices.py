"""The choices of enum parameters filled from ComfyUI (`choices_from`: the checkpoints, LoRAs, ... actually
present), asked of its `/object_info/{class}` at most every `FRESH_FOR` seconds per input: a model copied to
the NAS shows up within that, and a burst of runs does not ask ComfyUI once each."""

from __future__ import annotations

import time
from typing import Any

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.workflows.definition import Definition

FRESH_FOR = 30.0


class Choices:
    def __init__(self, client: ComfyClient) -> None:
        self.client = client
        self._known: dict[str, tuple[float, list[Any] | None]] = {}

    async def _of(self, source: str) -> list[Any] | None:
        now = time.monotonic()
        known = self._known.get(source)
        if known is not None and now - known[0] < FRESH_FOR:
            return known[1]
        node_class, _, input_name = source.partition(".")
        try:
            listed = await self.client.input_choices(node_class, input_name)
        except (ComfyHTTPError, ComfyUnreachable, ValueError):
            return known[1] if known is not None else None  # ComfyUI away: the last list, else no check here
        self._known[source] = (now, listed)
        return listed

    async def of(self, definition: Definition) -> dict[str, list[Any]]:
        """Each enum parameter's choices from ComfyUI, by parameter name (those it could not list are left out)."""
        found = {}
        for parameter in definition.parameters:
            if parameter.type == "enum" and parameter.choices_from:
                listed = await self._of(parameter.choices_from)
                if listed is not None:
                    found[parameter.name] = listed
        return found
