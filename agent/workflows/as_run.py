"""The editor's saved graph showing the values a run of its API format used (`with_values`), for the outputs'
metadata: what the editor reads back when an image is dropped on it, so it opens as it was made. Values go where
`editor.py` reads them from: a node's widgets, the primitive feeding one, an instance's own values (at its proxies,
else its inputs shown as widgets), and a subgraph definition's nodes."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent.workflows.editor import SUBGRAPH_INPUT, Scope, links_of, proxies_of, subgraphs_of, widget_places


def _set_widget(node: dict[str, Any], name: str, place: int | None, value: Any) -> None:
    values = node.get("widgets_values")
    if isinstance(values, dict) and name in values:
        node["widgets_values"] = {**values, name: value}
    elif isinstance(values, list) and place is not None and place < len(values):
        node["widgets_values"] = [*values[:place], value, *values[place + 1:]]


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2


def with_values(graph: Mapping[str, Any], prompt: Mapping[str, Any],
                object_info: Mapping[str, Any]) -> dict[str, Any]:
    """The editor's graph showing the values a run of its API format used (a published workflow's parameters),
    so an image's metadata opens in the editor as it was made: nodes' widgets, the primitives that feed them,
    subgraph instances' own values, and values inside a subgraph's definition (shared by its instances: the
    last instance's run value shows)."""
    subgraphs = {name: dict(definition) for name, definition in subgraphs_of(graph).items()}
    shown = _shown(graph, (), prompt, object_info, subgraphs)
    if subgraphs:
        shown["definitions"] = {**graph["definitions"], "subgraphs": list(subgraphs.values())}
    return shown


def _shown(graph: Mapping[str, Any], path: tuple[str, ...], prompt: Mapping[str, Any],
           object_info: Mapping[str, Any], subgraphs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    links = links_of(graph)
    nodes = {int(node["id"]): dict(node) for node in graph.get("nodes") or []}
    for node_id, node in nodes.items():
        kind, inner = str(node.get("type")), (*path, str(node_id))
        if kind in subgraphs and len(inner) <= len(subgraphs):  # deeper is a subgraph inside itself
            _instance_values(node, Scope(subgraphs[kind], inner), prompt)
            subgraphs[kind].update(_shown(subgraphs[kind], inner, prompt, object_info, subgraphs))
        ran = prompt.get(":".join(inner))
        if kind not in object_info or not isinstance(ran, dict):
            continue
        places = widget_places(object_info[kind])
        fed = {socket.get("name"): link.origin for socket in node.get("inputs") or []
               if socket.get("link") is not None and (link := links.get(int(socket["link"]))) is not None}
        for name, value in (ran.get("inputs") or {}).items():
            primitive = nodes.get(fed[name]) if name in fed else None
            if primitive is not None and primitive.get("type") == "PrimitiveNode":
                _set_widget(primitive, name, 0, value)
            elif name in places and not _is_link(value):
                _set_widget(node, name, places[name], value)
    return {**graph, "nodes": list(nodes.values())}


def _instance_values(instance: dict[str, Any], inner: Scope, prompt: Mapping[str, Any]) -> None:
    """An instance's widget values (at its proxies, else its inputs shown as widgets, in order) from what the run
    gave the inner inputs they feed (`INSTANCE:INNER`)."""
    proxies = proxies_of(instance)
    keys = proxies if proxies is not None else [
        ("-1", str(socket.get("name"))) for socket in instance.get("inputs") or [] if socket.get("widget")]
    for place, key in enumerate(keys):
        if key is None:
            continue
        node_id, name = key
        ran = (prompt.get(inner.id_of({"id": node_id})) or {}).get("inputs", {}).get(name)
        value = _fed_value(inner, name, prompt) if node_id == "-1" else ran
        if value is not None and not _is_link(value):
            _set_widget(instance, name, place, value)


def _fed_value(inner: Scope, name: Any, prompt: Mapping[str, Any]) -> Any:
    names = [entry.get("name") for entry in inner.graph.get("inputs") or []]
    for link in inner.graph.get("links") or []:
        if not isinstance(link, dict) or link.get("origin_id") != SUBGRAPH_INPUT:
            continue
        node = inner.nodes.get(int(link["target_id"]))
        sockets, slot, origin = (node or {}).get("inputs") or [], int(link["target_slot"]), int(link["origin_slot"])
        if node is None or origin >= len(names) or names[origin] != name or slot >= len(sockets):
            continue
        value = (prompt.get(inner.id_of(node)) or {}).get("inputs", {}).get(sockets[slot].get("name"))
        if value is not None and not _is_link(value):
            return value
    return None
