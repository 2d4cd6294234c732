"""Execution order: ComfyUI's ``ExecutionList`` (a topological dissolve with its UX-friendly pick)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def is_link(value: object) -> bool:
    """``[node_id: str, output_index: int|float]`` is a link to another node's output."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int | float)
    )


class ExecutionOrder:
    """Hands out the next node to run; the same order as ComfyUI's, which is what clients observe."""

    def __init__(
        self, prompt: dict[str, Any], is_output: Callable[[str], bool], is_cached: Callable[[str], bool]
    ) -> None:
        self._prompt = prompt
        self._is_output = is_output
        self._is_cached = is_cached
        self._pending: dict[str, None] = {}
        self._block_count: dict[str, int] = {}
        self._blocking: dict[str, dict[str, None]] = {}

    def add_node(self, node_id: str) -> None:
        """Schedule a node and, depth first, every uncached node it depends on."""
        stack, links = [node_id], []
        while stack:
            current = stack.pop()
            if current in self._pending:
                continue
            self._pending[current] = None
            self._block_count[current] = 0
            self._blocking[current] = {}
            for value in self._prompt[current]["inputs"].values():
                if is_link(value) and not self._is_cached(value[0]):
                    stack.append(value[0])
                    links.append((value[0], current))
        for source, target in links:
            if target not in self._blocking[source]:
                self._blocking[source][target] = None
                self._block_count[target] += 1

    def is_empty(self) -> bool:
        """True when every scheduled node has completed."""
        return not self._pending

    def next_node(self) -> str:
        """The node to run now: an output first, then one feeding an output (one or two hops away)."""
        ready = [n for n in self._pending if self._block_count[n] == 0]
        for node_id in ready:
            if self._is_output(node_id):
                return node_id
        for node_id in ready:
            if any(self._is_output(b) for b in self._blocking[node_id]):
                return node_id
        for node_id in ready:
            if any(self._is_output(c) for b in self._blocking[node_id] for c in self._blocking[b]):
                return node_id
        return ready[0]

    def complete(self, node_id: str) -> None:
        """Mark a node done, unblocking the nodes that wait on it."""
        del self._pending[node_id]
        for blocked in self._blocking.pop(node_id):
            self._block_count[blocked] -= 1
