"""ComfyUI's node catalog (`/object_info`: every node class, its inputs and their lists), which the editor's saved
format is converted against and enum parameters take their choices from.

A worker asks its ComfyUI for the classes it needs (`/object_info/{class}`, small), each kept `FRESH_FOR`
seconds: a model copied to the NAS shows up within that, and a burst of runs does not ask once each; when
ComfyUI is away the last answer serves. A gateway has no ComfyUI: each worker, once its ComfyUI answers, leaves
the whole catalog in the shared store (`publish_catalog`), and the gateway reads that.
"""

from __future__ import annotations

import asyncio
import json
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import Any

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.errors import ComfyUIUnavailable, WorkflowFormatError
from agent.stores.shared import SharedDocuments
from agent.workflows.as_run import with_values
from agent.workflows.editor import EditorGraphError, is_editor_graph, node_classes, to_api

FRESH_FOR = 30.0
SHARED_NAME = "object-info"  # the store's document: a worker's whole `/object_info`


def list_inputs(info: Any) -> dict[str, list[Any]]:
    """A node class's list inputs (`/object_info`'s two forms of them) and their values."""
    inputs = info.get("input") if isinstance(info, dict) else None
    found: dict[str, list[Any]] = {}
    for group in ("optional", "required"):  # a required input wins over an optional one of the same name
        specs = inputs.get(group) if isinstance(inputs, dict) else None
        for name, spec in (specs.items() if isinstance(specs, dict) else ()):
            if isinstance(spec, list) and spec and isinstance(spec[0], list):
                found[name] = list(spec[0])
            elif isinstance(spec, list) and len(spec) > 1 and spec[0] == "COMBO" and isinstance(spec[1], dict):
                found[name] = list(spec[1].get("options") or [])  # the newer form of a list input
    return found


class Catalog(ABC):
    @abstractmethod
    async def nodes(self, classes: Iterable[str]) -> dict[str, Any]:
        """`/object_info`'s entries of these classes (one this ComfyUI lacks is absent); ComfyUIUnavailable when
        the catalog cannot be read and none is known."""

    async def input_choices(self, node_class: str, input_name: str) -> list[Any] | None:
        """The values ComfyUI offers for one input now (the models it has), or None when it names no list."""
        return list_inputs((await self.nodes([node_class])).get(node_class)).get(input_name)


class LiveCatalog(Catalog):
    """This worker's ComfyUI, asked class by class."""

    def __init__(self, client: ComfyClient) -> None:
        self.client = client
        self._known: dict[str, tuple[float, dict[str, Any] | None]] = {}

    async def nodes(self, classes: Iterable[str]) -> dict[str, Any]:
        now = time.monotonic()
        wanted = set(classes)
        stale = [name for name in wanted if now - self._known.get(name, (-FRESH_FOR, None))[0] >= FRESH_FOR]
        if stale:
            await asyncio.gather(*(self._ask(name, now) for name in stale))
        return {name: info for name in wanted if (info := self._known[name][1]) is not None}

    async def _ask(self, name: str, now: float) -> None:
        try:
            self._known[name] = (now, await self.client.node_info(name))
        except (ComfyHTTPError, ComfyUnreachable, ValueError) as exc:
            if name not in self._known:  # ComfyUI away: the last answer serves, asked again next time
                raise ComfyUIUnavailable(f"ComfyUI's /object_info could not be read: {exc}") from exc


class StoredCatalog(Catalog):
    """The catalog a worker published, read from the store at most every FRESH_FOR seconds."""

    def __init__(self, shared: SharedDocuments) -> None:
        self.shared = shared
        self._read_at = -FRESH_FOR
        self._published: dict[str, Any] = {}

    async def nodes(self, classes: Iterable[str]) -> dict[str, Any]:
        now = time.monotonic()
        if now - self._read_at >= FRESH_FOR:
            raw = await self.shared.get_shared(SHARED_NAME)
            if raw is None:  # asked again next time: a worker publishes as soon as its ComfyUI answers
                raise ComfyUIUnavailable("no worker has published ComfyUI's node catalog yet")
            self._published = await asyncio.to_thread(json.loads, raw)  # megabytes with many custom nodes
            self._read_at = now
        return {name: self._published[name] for name in classes if name in self._published}


async def publish_catalog(client: ComfyClient, shared: SharedDocuments) -> int:
    """Leave ComfyUI's whole `/object_info` in the store for gateways; returns how many node classes it has."""
    try:
        catalog = await client.object_info()
    except (ComfyHTTPError, ComfyUnreachable, ValueError) as exc:
        raise ComfyUIUnavailable(f"ComfyUI's /object_info could not be read: {exc}") from exc
    await shared.put_shared(SHARED_NAME, json.dumps(catalog, separators=(",", ":")).encode())
    return len(catalog)


async def api_format(graph: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """A graph in ComfyUI's API format, converted when it is the editor's saved format; what cannot be converted
    is a `WorkflowFormatError` naming the node."""
    if not is_editor_graph(graph):
        return graph
    found = await catalog.nodes(node_classes(graph))
    try:
        converted = to_api(graph, found)
    except EditorGraphError as exc:
        raise WorkflowFormatError(f"the editor's workflow cannot be converted: {exc}", node_id=exc.node_id,
                                  class_type=exc.class_type) from None
    if not converted:
        raise WorkflowFormatError("the editor's workflow has no node to run (every node muted, or notes only)")
    return converted


async def saved_as_run(saved: dict[str, Any], prompt: dict[str, Any], catalog: Catalog) -> dict[str, Any]:
    """The editor's saved graph with the values a run of it used, for the outputs' metadata; as saved when the
    catalog cannot be read (the run does not depend on it)."""
    try:
        found = await catalog.nodes(node_classes(saved))
    except ComfyUIUnavailable:
        return saved
    return with_values(saved, prompt, found)
