"""The ComfyUI editor's saved format (`nodes`, `links`, `widgets_values`) as the API format its "Export (API)"
gives for the same graph, converted against ComfyUI's own `/object_info`: no library does this outside the
editor's TypeScript (ComfyUI's issue 1112), so it is written here, after the editor's `graphToPrompt`.

A node's widget values are matched to its inputs in `/object_info`'s order, skipping the extra values the editor
keeps (a seed's `control_after_generate`, an upload button); a link is followed through `Reroute` nodes and
bypassed nodes (mode 4: an output takes the first input of its type) to the node that makes the value, and a link
from a `PrimitiveNode` is that node's value. Muted nodes (mode 2) and the editor's own nodes (notes, primitives,
reroutes) are left out. What cannot be converted raises `EditorGraphError` naming the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MUTED, BYPASSED = 2, 4
EDITOR_ONLY = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
UPLOADS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")


class EditorGraphError(ValueError):
    def __init__(self, node: Any, reason: str) -> None:
        self.node_id, self.class_type = str(node.get("id")), str(node.get("type"))
        super().__init__(f"node {self.node_id} ({self.class_type}): {reason}")


def is_editor_graph(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("nodes"), list) and "links" in value


def node_classes(graph: Mapping[str, Any]) -> set[str]:
    """The ComfyUI node classes a graph uses, those inside its subgraphs included: what to look up."""
    subgraphs = (graph.get("definitions") or {}).get("subgraphs") or []
    inner = {str(subgraph.get("id")) for subgraph in subgraphs if isinstance(subgraph, dict)}
    nodes = [*(graph.get("nodes") or []), *(node for subgraph in subgraphs if isinstance(subgraph, dict)
                                            for node in subgraph.get("nodes") or [])]
    return {str(node.get("type")) for node in nodes if isinstance(node, dict)} - inner - EDITOR_ONLY


@dataclass(frozen=True)
class Link:
    origin: int
    slot: int


def _links(graph: Mapping[str, Any]) -> dict[int, Link]:
    """Links by id: a list `[id, origin, slot, target, target_slot, type]` or, in newer saves, an object."""
    found = {}
    for link in graph.get("links") or []:
        if isinstance(link, dict):
            found[int(link["id"])] = Link(int(link["origin_id"]), int(link["origin_slot"]))
        else:
            found[int(link[0])] = Link(int(link[1]), int(link[2]))
    return found


def _is_widget(spec: Any) -> bool:
    kind, options = (spec[0], spec[1] if len(spec) > 1 else {}) if isinstance(spec, list | tuple) else (spec, {})
    if isinstance(options, dict) and options.get("forceInput"):
        return False
    return isinstance(kind, list) or kind in WIDGET_TYPES


def _extra_values(spec: Any) -> int:
    """Values the editor keeps after a widget's own: a seed's control, an upload button."""
    options = spec[1] if isinstance(spec, list | tuple) and len(spec) > 1 and isinstance(spec[1], dict) else {}
    return int(bool(options.get("control_after_generate"))) + sum(bool(options.get(key)) for key in UPLOADS)


def _specs(info: Mapping[str, Any]) -> list[tuple[str, Any]]:
    inputs = info.get("input") or {}
    order = info.get("input_order") or {part: list(inputs.get(part) or {}) for part in ("required", "optional")}
    return [(name, (inputs.get(part) or {})[name]) for part in ("required", "optional")
            for name in order.get(part) or [] if name in (inputs.get(part) or {})]


class _Converter:
    def __init__(self, graph: Mapping[str, Any], object_info: Mapping[str, Any]) -> None:
        self.nodes = {int(node["id"]): node for node in graph["nodes"]}
        self.links = _links(graph)
        self.object_info = object_info

    def prompt(self) -> dict[str, Any]:
        return {str(node_id): self._node(node) for node_id, node in self.nodes.items()
                if node.get("mode", 0) not in (MUTED, BYPASSED) and node.get("type") not in EDITOR_ONLY}

    def _node(self, node: Mapping[str, Any]) -> dict[str, Any]:
        info = self.object_info.get(str(node.get("type")))
        if info is None:
            raise EditorGraphError(node, "this ComfyUI has no such node (a custom node not installed?)")
        inputs = {**self._widgets(node, info), **self._linked(node)}
        return {"inputs": inputs, "class_type": node["type"],
                "_meta": {"title": node.get("title") or info.get("display_name") or node["type"]}}

    def _widgets(self, node: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
        values = node.get("widgets_values")
        widgets = [(name, spec) for name, spec in _specs(info) if _is_widget(spec)]
        if isinstance(values, dict):  # some nodes save their widgets by name
            return {name: values[name] for name, _ in widgets if name in values}
        values, found, place = values or [], {}, 0
        for name, spec in widgets:
            if place >= len(values):
                break
            found[name] = values[place]
            place += 1 + _extra_values(spec)
        return found

    def _linked(self, node: Mapping[str, Any]) -> dict[str, Any]:
        found = {}
        for socket in node.get("inputs") or []:
            if socket.get("link") is None:
                continue
            value = self._source(node, int(socket["link"]))
            if value is not None:
                found[socket["name"]] = value
        return found

    def _source(self, node: Mapping[str, Any], link_id: int, seen: frozenset[int] = frozenset()) -> Any:
        """What a link carries: `[node id, slot]` of the node that makes it, a primitive's value, or None when it
        comes from a muted node (or nothing)."""
        link = self.links.get(link_id)
        if link is None:
            raise EditorGraphError(node, f"link {link_id} is not in the graph")
        origin = self.nodes.get(link.origin)
        if origin is None:
            raise EditorGraphError(node, f"a link comes from node {link.origin}, which is not in the graph")
        if link.origin in seen:
            raise EditorGraphError(origin, "its links run in a circle")
        kind, mode = origin.get("type"), origin.get("mode", 0)
        if kind == "PrimitiveNode":
            values = origin.get("widgets_values") or [None]
            return values[0]
        if kind == "Reroute" or mode == BYPASSED:
            upstream = self._passed_through(origin, link.slot)
            return None if upstream is None else self._source(origin, upstream, seen | {link.origin})
        if mode == MUTED:
            return None
        return [str(link.origin), link.slot]

    def _passed_through(self, origin: Mapping[str, Any], slot: int) -> int | None:
        """The link into a reroute, or into a bypassed node's first input of the output's type."""
        sockets = [socket for socket in origin.get("inputs") or [] if socket.get("link") is not None]
        if origin.get("type") == "Reroute":
            return int(sockets[0]["link"]) if sockets else None
        outputs = origin.get("outputs") or []
        kind = outputs[slot].get("type") if slot < len(outputs) else None
        matching = [socket for socket in sockets if socket.get("type") == kind]
        return int(matching[0]["link"]) if matching else None


def to_api(graph: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """The API format of an editor graph (`EditorGraphError` for what cannot be converted)."""
    if (graph.get("definitions") or {}).get("subgraphs"):
        raise EditorGraphError({"id": "-", "type": "subgraph"}, "subgraphs are not converted yet; export the "
                               "workflow in API format (Workflow > Export (API))")
    return _Converter(graph, object_info).prompt()
