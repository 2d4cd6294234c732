"""Per-prompt node states, sent as ``progress_state`` snapshots (ComfyUI's ProgressRegistry + WebUI handler)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class ProgressRegistry:
    """Tracks pending/running/finished nodes; every change sends a snapshot of all non-pending nodes."""

    def __init__(self, prompt_id: str, send: Callable[[dict[str, Any]], None]) -> None:
        self._prompt_id = prompt_id
        self._send = send
        self._nodes: dict[str, dict[str, Any]] = {}

    def start(self, node_id: str) -> None:
        """A node begins (value 0.0 of 1.0)."""
        self._set(node_id, "running", 0.0, 1.0)

    def update(self, node_id: str, value: float, maximum: float) -> None:
        """A node reports progress (the values are sent as given: KSampler sends ints)."""
        self._set(node_id, "running", value, maximum)

    def finish(self, node_id: str) -> None:
        """A node is done; its value jumps to its max (an int 1 for a cached node never started)."""
        entry = self._entry(node_id)
        self._set(node_id, "finished", entry["max"], entry["max"])

    def _entry(self, node_id: str) -> dict[str, Any]:
        return self._nodes.setdefault(node_id, {"state": "pending", "value": 0, "max": 1})

    def _set(self, node_id: str, state: str, value: float, maximum: float) -> None:
        self._entry(node_id).update(state=state, value=value, max=maximum)
        self._send({"prompt_id": self._prompt_id, "nodes": self._snapshot()})

    def _snapshot(self) -> dict[str, Any]:
        return {
            node_id: {
                "value": entry["value"],
                "max": entry["max"],
                "state": entry["state"],
                "node_id": node_id,
                "prompt_id": self._prompt_id,
                "display_node_id": node_id,
                "parent_node_id": None,
                "real_node_id": node_id,
            }
            for node_id, entry in self._nodes.items()
            if entry["state"] != "pending"
        }
