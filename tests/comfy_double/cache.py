"""ComfyUI's default ("classic") cache: it keeps only what the current prompt can reuse.

Outputs and UI results are keyed by an input signature (class, IS_CHANGED value, literal inputs and the
signatures of all ancestors), so an unchanged node of the previous prompt is cached even under another id.
Node objects are keyed by (node id, class), which is why a PreviewImage keeps its random file prefix
across prompts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .graph import is_link


def to_hashable(value: Any) -> Any:
    """A hashable stand-in for JSON-like data, equal exactly when the data are equal."""
    if isinstance(value, dict):
        return ("dict", tuple(sorted((k, to_hashable(v)) for k, v in value.items())))
    if isinstance(value, list | tuple):
        return ("list", tuple(to_hashable(v) for v in value))
    return value


class Signatures:
    """Computes ``CacheKeySetInputSignature`` keys for the nodes of one prompt."""

    def __init__(self, prompt: dict[str, Any], is_changed: Callable[[str], Any]) -> None:
        self._prompt = prompt
        self._is_changed = is_changed

    def key(self, node_id: str) -> Any:
        """The node's own signature followed by its ancestors' in a deterministic order."""
        order: dict[str, int] = {}
        self._collect_ancestors(node_id, order)
        parts = [self._immediate(node_id, order)] + [self._immediate(a, order) for a in order]
        return to_hashable(parts)

    def _collect_ancestors(self, node_id: str, order: dict[str, int]) -> None:
        if node_id not in self._prompt:
            return
        inputs = self._prompt[node_id]["inputs"]
        for name in sorted(inputs):
            if is_link(inputs[name]) and inputs[name][0] not in order:
                order[inputs[name][0]] = len(order)
                self._collect_ancestors(inputs[name][0], order)

    def _immediate(self, node_id: str, order: dict[str, int]) -> list[Any]:
        if node_id not in self._prompt:
            return [float("nan")]  # a missing node can never be cached
        node = self._prompt[node_id]
        signature: list[Any] = [node["class_type"], self._is_changed(node_id)]
        for name in sorted(node["inputs"]):
            value = node["inputs"][name]
            if is_link(value):
                signature.append((name, ("ANCESTOR", order[value[0]], value[1])))
            else:
                signature.append((name, value))
        return signature


class NodeCache:
    """Outputs, UI results and node objects that survive from one prompt to the next."""

    def __init__(self) -> None:
        self._keys: dict[str, Any] = {}
        self._outputs: dict[Any, tuple[Any, ...]] = {}
        self._ui: dict[Any, dict[str, Any]] = {}
        self._objects: dict[tuple[str, str], object] = {}

    def set_prompt(self, prompt: dict[str, Any], is_changed: Callable[[str], Any]) -> None:
        """Key the new prompt's nodes and drop everything it cannot reuse."""
        signatures = Signatures(prompt, is_changed)
        self._keys = {node_id: signatures.key(node_id) for node_id in prompt}
        used = set(self._keys.values())
        self._outputs = {k: v for k, v in self._outputs.items() if k in used}
        self._ui = {k: v for k, v in self._ui.items() if k in used}
        live = {(node_id, node["class_type"]) for node_id, node in prompt.items()}
        self._objects = {k: v for k, v in self._objects.items() if k in live}

    def node_ids(self) -> list[str]:
        """The nodes of the current prompt (ComfyUI's ``current_outputs``)."""
        return list(self._keys)

    def output(self, node_id: str) -> tuple[Any, ...] | None:
        """Cached outputs of a node, or None."""
        return self._outputs.get(self._keys.get(node_id))

    def set_output(self, node_id: str, outputs: tuple[Any, ...]) -> None:
        """Store a node's outputs under its signature."""
        self._outputs[self._keys[node_id]] = outputs

    def ui(self, node_id: str) -> dict[str, Any] | None:
        """Cached ``{"meta", "output"}`` UI entry of a node, or None."""
        return self._ui.get(self._keys.get(node_id))

    def set_ui(self, node_id: str, output: dict[str, Any]) -> None:
        """Store a node's UI output with the meta that /history reports."""
        meta = {"node_id": node_id, "display_node": node_id, "parent_node": None, "real_node_id": node_id}
        self._ui[self._keys[node_id]] = {"meta": meta, "output": output}

    def node_object(self, node_id: str, class_type: str, factory: Callable[[], object]) -> Any:
        """The node instance for (id, class), created on first use."""
        key = (node_id, class_type)
        if key not in self._objects:
            self._objects[key] = factory()
        return self._objects[key]
