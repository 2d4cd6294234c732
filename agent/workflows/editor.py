"""The ComfyUI editor's saved format (`nodes`, `links`, `widgets_values`) as the API format its "Export (API)"
gives for the same graph, converted against ComfyUI's own `/object_info`: no library does this outside the
editor's TypeScript (ComfyUI's issue 1112), so it is written here, after the editor's `graphToPrompt`.

A node's widget values are matched to its inputs in `/object_info`'s order, skipping the extra values the editor
keeps (a seed's `control_after_generate`, an upload button), and a widget newer than the save takes its default
as the editor gives it on load; a link is followed through `Reroute` nodes and
bypassed nodes (mode 4: an output takes the input of its slot when the types agree, else the first of its type) to
the node that makes the value, and a link from a `PrimitiveNode` is that node's value. Muted nodes (mode 2) and the
editor's own nodes (notes, primitives, reroutes) are left out, and so is an input linked to a muted node.

A subgraph (the editor's `definitions.subgraphs`) is flattened as the editor flattens it: each inner node of an
instance becomes `INSTANCE:INNER` (nested: `OUTER:INSTANCE:INNER`), a link from the subgraph's input node is the
link into the instance's input of that name (or, unlinked, the instance's own widget value), and an instance's
output is the inner link that feeds the subgraph's output. What cannot be converted raises `EditorGraphError`
naming the node.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

MUTED, BYPASSED = 2, 4
EDITOR_ONLY = frozenset({"Note", "MarkdownNote", "PrimitiveNode", "Reroute"})
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
UPLOADS = ("image_upload", "video_upload", "audio_upload", "animated_image_upload")
SUBGRAPH_INPUT = -10  # the id the editor gives a subgraph's input node
UNSET = object()  # a link that carries nothing: the node keeps its own widget value


class EditorGraphError(ValueError):
    def __init__(self, node: Any, reason: str) -> None:
        self.node_id, self.class_type = str(node.get("id")), str(node.get("type"))
        super().__init__(f"node {self.node_id} ({self.class_type}): {reason}")


def is_editor_graph(value: Any) -> bool:
    return isinstance(value, dict) and isinstance(value.get("nodes"), list) and "links" in value


def subgraphs_of(graph: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    found = (graph.get("definitions") or {}).get("subgraphs") or []
    return {str(subgraph.get("id")): subgraph for subgraph in found if isinstance(subgraph, dict)}


def node_classes(graph: Mapping[str, Any]) -> set[str]:
    """The ComfyUI node classes a graph uses, those inside its subgraphs included: what to look up."""
    subgraphs = subgraphs_of(graph)
    nodes = [*(graph.get("nodes") or []), *(node for subgraph in subgraphs.values()
                                            for node in subgraph.get("nodes") or [])]
    return {str(node.get("type")) for node in nodes if isinstance(node, dict)} - set(subgraphs) - EDITOR_ONLY


@dataclass(frozen=True)
class Link:
    origin: int
    slot: int


def links_of(graph: Mapping[str, Any]) -> dict[int, Link]:
    """Links by id: a list `[id, origin, slot, target, target_slot, type]` or, in newer saves, an object."""
    found = {}
    for link in graph.get("links") or []:
        if isinstance(link, dict):
            found[int(link["id"])] = Link(int(link["origin_id"]), int(link["origin_slot"]))
        else:
            found[int(link[0])] = Link(int(link[1]), int(link[2]))
    return found


@dataclass
class Scope:
    """One graph being read: the root, or a subgraph's definition as one instance of it (`path` of instance ids
    from the root; `parent` and `instance` where that instance sits)."""

    graph: Mapping[str, Any]
    path: tuple[str, ...] = ()
    parent: Scope | None = None
    instance: Mapping[str, Any] = field(default_factory=dict)

    @cached_property
    def nodes(self) -> dict[int, Mapping[str, Any]]:
        return {int(node["id"]): node for node in self.graph.get("nodes") or []}

    @cached_property
    def links(self) -> dict[int, Link]:
        return links_of(self.graph)

    def id_of(self, node: Mapping[str, Any]) -> str:
        return ":".join((*self.path, str(node["id"])))

    def inside(self, instance: Mapping[str, Any], definition: Mapping[str, Any]) -> Scope:
        if str(instance.get("type")) in {str(scope.instance.get("type")) for scope in self._chain()}:
            raise EditorGraphError(instance, "its subgraph contains itself")
        return Scope(definition, (*self.path, str(instance["id"])), self, instance)

    def _chain(self) -> list[Scope]:
        return [self, *(self.parent._chain() if self.parent else [])]


def _kind_and_options(spec: Any) -> tuple[Any, dict[str, Any]]:
    """An input's spec in `/object_info`: its type (or list of choices) and its options."""
    kind, options = (spec[0], spec[1] if len(spec) > 1 else {}) if isinstance(spec, list | tuple) else (spec, {})
    return kind, options if isinstance(options, dict) else {}


def _is_widget(spec: Any) -> bool:
    kind, options = _kind_and_options(spec)
    return not options.get("forceInput") and (isinstance(kind, list) or kind in WIDGET_TYPES)


def _extra_values(spec: Any) -> int:
    """Values the editor keeps after a widget's own: a seed's control, an upload button."""
    _, options = _kind_and_options(spec)
    return int(bool(options.get("control_after_generate"))) + sum(bool(options.get(key)) for key in UPLOADS)


def _default(spec: Any) -> Any:
    """A widget's value before anyone sets it: its default, else a list's first choice."""
    kind, options = _kind_and_options(spec)
    choices = kind if isinstance(kind, list) else options.get("options") if kind == "COMBO" else None
    return options["default"] if "default" in options else choices[0] if choices else None


def _specs(info: Mapping[str, Any]) -> list[tuple[str, Any]]:
    inputs = info.get("input") or {}
    order = info.get("input_order") or {part: list(inputs.get(part) or {}) for part in ("required", "optional")}
    return [(name, (inputs.get(part) or {})[name]) for part in ("required", "optional")
            for name in order.get(part) or [] if name in (inputs.get(part) or {})]


def proxies_of(instance: Mapping[str, Any]) -> list[tuple[str, str] | None] | None:
    """An instance's legacy `properties.proxyWidgets` (editors of late 2025): per value it keeps, the inner node
    and widget it shows ("-1" and a name for a subgraph input); None when it has none."""
    entries = (instance.get("properties") or {}).get("proxyWidgets")
    if not isinstance(entries, list):
        return None
    return [(str(entry[0]), str(entry[1])) if isinstance(entry, list) and len(entry) >= 2 else None
            for entry in entries]


def _host_place(instance: Mapping[str, Any], name: str, fed: tuple[str, str] | None) -> int | None:
    """Where in its `widgets_values` an instance keeps its value for a subgraph input: at its proxy (the input's
    own, or the inner widget it feeds), else in the order of its inputs shown as widgets."""
    proxies = proxies_of(instance)
    if proxies is not None:
        return next((proxies.index(key) for key in (("-1", name), fed) if key in proxies), None)
    widgets = [socket.get("name") for socket in instance.get("inputs") or [] if socket.get("widget")]
    return widgets.index(name) if name in widgets else None


def _promoted(instance: Mapping[str, Any], node_id: str) -> dict[str, Any]:
    """The values an instance keeps for one inner node's widgets shown on it without a subgraph input (legacy
    proxies): the editor makes each that instance's own on load."""
    values = instance.get("widgets_values")
    if not isinstance(values, list):
        return {}
    return {key[1]: values[place] for place, key in enumerate(proxies_of(instance) or [])
            if key is not None and key[0] == node_id and place < len(values) and values[place] is not None}


class _Converter:
    def __init__(self, graph: Mapping[str, Any], object_info: Mapping[str, Any]) -> None:
        self.root = Scope(graph)
        self.subgraphs = subgraphs_of(graph)
        self.object_info = object_info

    def prompt(self) -> dict[str, Any]:
        prompt: dict[str, Any] = {}
        self._emit(self.root, prompt)
        for node in prompt.values():  # as the editor does: an input linked to a node left out goes too
            node["inputs"] = {name: value for name, value in node["inputs"].items()
                              if not (isinstance(value, list) and len(value) == 2 and str(value[0]) not in prompt)}
        return prompt

    def _emit(self, scope: Scope, prompt: dict[str, Any]) -> None:
        for node in scope.nodes.values():
            kind = str(node.get("type"))
            if node.get("mode", 0) in (MUTED, BYPASSED) or kind in EDITOR_ONLY:
                continue
            if kind in self.subgraphs:
                self._emit(scope.inside(node, self.subgraphs[kind]), prompt)
            elif kind.startswith(("workflow>", "workflow/")):
                raise EditorGraphError(node, "group nodes are not converted; convert it to a subgraph in the "
                                       "editor, or export the workflow in API format (Workflow > Export (API))")
            else:
                prompt[scope.id_of(node)] = self._node(scope, node)

    def _node(self, scope: Scope, node: Mapping[str, Any]) -> dict[str, Any]:
        info = self.object_info.get(str(node.get("type")))
        if info is None:
            raise EditorGraphError(node, "this ComfyUI has no such node (a custom node not installed?)")
        promoted = {name: value for name, value in _promoted(scope.instance, str(node["id"])).items()
                    if name in widget_places(info)}
        inputs = {**self._widgets(node, info), **promoted, **self._linked(scope, node)}
        return {"inputs": inputs, "class_type": node["type"],
                "_meta": {"title": node.get("title") or info.get("display_name") or node["type"]}}

    def _widgets(self, node: Mapping[str, Any], info: Mapping[str, Any]) -> dict[str, Any]:
        values = node.get("widgets_values")
        widgets = [(name, spec) for name, spec in _specs(info) if _is_widget(spec)]
        if isinstance(values, dict):  # some nodes save their widgets by name
            return {name: values[name] for name, _ in widgets if name in values}
        values, found, place = values or [], {}, 0
        for name, spec in widgets:  # one the save predates has its default, as the editor gives it on load
            value = values[place] if place < len(values) else _default(spec)
            if value is not None:
                found[name] = value
            place += 1 + _extra_values(spec)
        return found

    def _linked(self, scope: Scope, node: Mapping[str, Any]) -> dict[str, Any]:
        found = {}
        for socket in node.get("inputs") or []:
            if socket.get("link") is None:
                continue
            value = self._source(scope, node, int(socket["link"]))
            if value is not UNSET:
                found[socket["name"]] = value
        return found

    def _source(self, scope: Scope, node: Mapping[str, Any], link_id: int, seen: frozenset[str] = frozenset(),
                ) -> Any:
        """What a link carries: `[node id, slot]` of the node that makes it, a primitive's or an instance's widget
        value, or UNSET."""
        link = scope.links.get(link_id)
        if link is None:
            raise EditorGraphError(node, f"link {link_id} is not in the graph")
        if link.origin == SUBGRAPH_INPUT and scope.parent is not None:
            return self._from_instance(scope, node, link_id, link.slot, seen)
        origin = scope.nodes.get(link.origin)
        if origin is None:
            raise EditorGraphError(node, f"a link comes from node {link.origin}, which is not in the graph")
        if scope.id_of(origin) in seen:
            raise EditorGraphError(origin, "its links run in a circle")
        return self._output(scope, origin, link.slot, seen | {scope.id_of(origin)})

    def _output(self, scope: Scope, origin: Mapping[str, Any], slot: int, seen: frozenset[str]) -> Any:
        kind, mode = str(origin.get("type")), origin.get("mode", 0)
        if kind == "PrimitiveNode":
            return (origin.get("widgets_values") or [None])[0]
        if kind == "Reroute" or mode == BYPASSED:
            upstream = self._passed_through(origin, slot)
            return UNSET if upstream is None else self._source(scope, origin, upstream, seen)
        if kind in self.subgraphs and mode != MUTED:
            outputs = self.subgraphs[kind].get("outputs") or []
            links = outputs[slot].get("linkIds") or [] if slot < len(outputs) else []
            if not links:
                return UNSET
            return self._source(scope.inside(origin, self.subgraphs[kind]), origin, int(links[0]), seen)
        return [scope.id_of(origin), slot]

    def _from_instance(self, scope: Scope, node: Mapping[str, Any], link_id: int, slot: int,
                       seen: frozenset[str]) -> Any:
        """A subgraph input: the link into the instance's input of that name, else the instance's widget value."""
        assert scope.parent is not None
        inputs = scope.graph.get("inputs") or []
        if slot >= len(inputs):
            raise EditorGraphError(node, f"its subgraph has no input {slot}")
        name = str(inputs[slot].get("name"))
        sockets = scope.instance.get("inputs") or []
        socket = next((socket for socket in sockets if socket.get("name") == name), None)
        if socket is not None and socket.get("link") is not None:
            return self._source(scope.parent, scope.instance, int(socket["link"]), seen)
        target: Mapping[str, Any] = next(
            (socket for socket in node.get("inputs") or [] if socket.get("link") == link_id), {})
        fed = (str(node.get("id")), str((target.get("widget") or {}).get("name") or target.get("name")))
        place = _host_place(scope.instance, name, fed)
        values = scope.instance.get("widgets_values")
        if not isinstance(values, list) or place is None or place >= len(values) or values[place] is None:
            return UNSET
        return values[place]

    @staticmethod
    def _passed_through(origin: Mapping[str, Any], slot: int) -> int | None:
        """The link into a reroute; into a bypassed node's input of the same slot when the types agree, else into
        its first input of the output's type."""
        inputs = origin.get("inputs") or []
        if origin.get("type") == "Reroute":
            chosen = inputs[0] if inputs else None
        else:
            outputs = origin.get("outputs") or []
            kind = outputs[slot].get("type") if slot < len(outputs) else None
            same = inputs[slot] if slot < len(inputs) and inputs[slot].get("type") == kind else None
            chosen = same or next((socket for socket in inputs if socket.get("type") == kind), None)
        return None if chosen is None or chosen.get("link") is None else int(chosen["link"])


def widget_places(info: Mapping[str, Any]) -> dict[str, int]:
    """Where each widget's value sits in a node's `widgets_values` (as `_Converter._widgets` reads them)."""
    places, place = {}, 0
    for name, spec in _specs(info):
        if _is_widget(spec):
            places[name] = place
            place += 1 + _extra_values(spec)
    return places


def to_api(graph: Mapping[str, Any], object_info: Mapping[str, Any]) -> dict[str, Any]:
    """The API format of an editor graph (`EditorGraphError` for what cannot be converted)."""
    return _Converter(graph, object_info).prompt()
