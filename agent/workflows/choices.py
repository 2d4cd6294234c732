"""The choices of enum parameters filled from ComfyUI (`choices_from`: the checkpoints, LoRAs, ... actually
present), asked at most every `FRESH_FOR` seconds per input: a model copied to the NAS shows up within that, and
a burst of runs does not ask once each.

A worker asks its ComfyUI (`/object_info/{class}`). A gateway has no ComfyUI: each worker, once its ComfyUI
answers, leaves every list input of its `/object_info` in the shared store (`publish_choices`), and the gateway
reads that (`StoredChoices`).
"""

from __future__ import annotations

import json
import time
from typing import Any, Protocol

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.errors import AgentError, ComfyUIUnavailable
from agent.stores.shared import SharedDocuments
from agent.workflows.definition import Definition

FRESH_FOR = 30.0
SHARED_NAME = "input-choices"  # the store's document: {class: {input: [values]}}


class ChoiceSource(Protocol):
    async def input_choices(self, node_class: str, input_name: str) -> list[Any] | None: ...


class StoredChoices:
    """The list inputs a worker published, read from the store at most every FRESH_FOR seconds."""

    def __init__(self, shared: SharedDocuments) -> None:
        self.shared = shared
        self._read_at = -FRESH_FOR
        self._published: dict[str, dict[str, list[Any]]] = {}

    async def input_choices(self, node_class: str, input_name: str) -> list[Any] | None:
        now = time.monotonic()
        if now - self._read_at >= FRESH_FOR:
            raw = await self.shared.get_shared(SHARED_NAME)
            if raw is None:  # asked again next time: a worker publishes as soon as its ComfyUI answers
                raise ComfyUIUnavailable("no worker has published ComfyUI's model lists yet")
            self._published = json.loads(raw)
            self._read_at = now
        return self._published.get(node_class, {}).get(input_name)


async def publish_choices(client: ComfyClient, shared: SharedDocuments) -> int:
    """Leave ComfyUI's list inputs in the store for gateways; returns how many node classes have some."""
    try:
        listed = await client.all_input_choices()
    except (ComfyHTTPError, ComfyUnreachable, ValueError) as exc:
        raise ComfyUIUnavailable(f"ComfyUI's /object_info could not be read: {exc}") from exc
    await shared.put_shared(SHARED_NAME, json.dumps(listed, separators=(",", ":")).encode())
    return len(listed)


class Choices:
    def __init__(self, source: ChoiceSource) -> None:
        self.source = source
        self._known: dict[str, tuple[float, list[Any] | None]] = {}

    async def _of(self, source: str) -> list[Any] | None:
        now = time.monotonic()
        known = self._known.get(source)
        if known is not None and now - known[0] < FRESH_FOR:
            return known[1]
        node_class, _, input_name = source.partition(".")
        try:
            listed = await self.source.input_choices(node_class, input_name)
        except (ComfyHTTPError, ComfyUnreachable, ValueError, AgentError):
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
