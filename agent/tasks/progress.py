"""Turn ComfyUI events into the `TProgress` map: every prompt node, nothing else, never going backwards.

Events may arrive twice (a socket's and the history's view of the same run after a reconnect), so applying
one is idempotent: a finished node stays finished and an output replaces, never appends.

The map is copy-on-write: once `snapshot` handed it out, the next change copies the map and each node it
changes, so a snapshot (what a run's events carry, per sampler step) is never changed afterwards, at the cost
of one shallow copy per change instead of a deep copy per event.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

from pydantic import ValidationError

from agent.comfy.messages import (
    ExecutionFailed,
    ExecutionInterrupted,
    ExecutionSucceeded,
    Message,
    NodeExecuted,
    NodeExecuting,
    NodesCached,
    ProgressReported,
)
from agent.tasks.model import FileRef, ImageRef, NodeProgress, Progress

Ref = TypeVar("Ref", bound=ImageRef)


def _links(inputs: Any) -> Iterable[str]:
    for value in (inputs or {}).values() if isinstance(inputs, dict) else ():
        if isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
            yield str(value[0])


def _refs(entries: Any, model: type[Ref]) -> list[Ref]:
    """The entries that name a file (an entry of another shape is no file, and no reason to fail a run)."""
    refs = []
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("filename"), str):
            with contextlib.suppress(ValidationError):
                refs.append(model.model_validate(entry))
    return refs


def images_in(output: dict[str, Any]) -> list[ImageRef]:
    """The node's `images` (ComfyUI's SaveVideo and SaveAnimatedWEBP report there too)."""
    return _refs(output.get("images"), ImageRef)


def other_files_in(output: dict[str, Any]) -> list[FileRef]:
    """The files the node reported outside `images`: `gifs`, `audio`, `3d`, a custom node's own lists."""
    return [ref for name, entries in output.items() if name != "images" for ref in _refs(entries, FileRef)]


def files_in(output: dict[str, Any]) -> list[ImageRef]:
    """Every file the node reported, in whatever list."""
    return [*images_in(output), *other_files_in(output)]


def place_of(file: ImageRef) -> tuple[str, str, str]:
    return file.type, file.subfolder, file.filename


def _with_stored(entries: Any, places: Mapping[tuple[str, str, str], ImageRef]) -> Any:
    if not isinstance(entries, list):
        return entries
    stored = []
    for entry in entries:
        ref = _refs([entry], ImageRef)
        place = places.get(place_of(ref[0])) if ref else None
        stored.append({**entry, **place.model_dump(include={"url", "key", "content_type", "bytes"})}
                      if place is not None else entry)
    return stored


class ProgressTracker:
    def __init__(self, prompt: dict[str, Any], clock: Callable[[], float] = time.time) -> None:
        self.nodes: Progress = {node_id: NodeProgress() for node_id in prompt}
        self._shared = True  # the map as made may be held already (the run's record)
        self._own: set[str] = set()  # nodes changed here since the map was last handed out
        self._parents = {node_id: set(_links(node.get("inputs"))) for node_id, node in prompt.items()}
        self._clock = clock
        self._finished: set[str] = set()
        self._running: str | None = None
        self.reported: dict[str, dict[str, Any]] = {}
        self._shown_as: dict[str, str] = {}

    def snapshot(self) -> Progress:
        """The map as it is now, never to change: changes after this go to copies."""
        self._shared = True
        self._own.clear()
        return self.nodes

    def _writable(self, node: str) -> NodeProgress:
        """The node's state, for this tracker alone to change."""
        if self._shared:
            self.nodes = dict(self.nodes)
            self._shared = False
        if node not in self._own:
            self.nodes[node] = self.nodes[node].model_copy()
            self._own.add(node)
        return self.nodes[node]

    def apply(self, event: Message) -> bool:
        """Apply one event; True when the map changed and is worth saving."""
        handler = self._handlers.get(type(event))
        return bool(handler and handler(self, event))

    def _node(self, node: str | None, display: str | None = None) -> str | None:
        """The prompt node an event belongs to: nodes a custom node expands into show as their parent."""
        for candidate in (display, self._shown_as.get(node or ""), node):
            if candidate in self.nodes:
                return candidate
        return None

    def _now(self) -> int:
        return int(self._clock())

    def _finish(self, node: str) -> bool:
        if node in self._finished:
            return False
        state = self._writable(node)
        state.max = state.max or 1
        state.value = state.max
        state.start = state.start or self._now()
        state.last_updated = self._now()
        self._finished.add(node)
        if self._running == node:
            self._running = None
        return True

    def _finish_all(self, nodes: Iterable[str]) -> bool:
        changed = False
        for node in nodes:
            if node in self.nodes:
                changed = self._finish(node) or changed
        return changed

    def _on_cached(self, event: NodesCached) -> bool:
        return self._finish_all(event.nodes)

    def _on_executing(self, event: NodeExecuting) -> bool:
        node = self._node(event.node, event.display_node)
        if node is None or node == self._running:
            return False
        changed = self._finish(self._running) if self._running else False
        if node in self._finished:
            return changed
        state = self._writable(node)
        state.max = state.max or 1
        state.start = state.start or self._now()
        state.last_updated = self._now()
        self._running = node
        return True

    def _on_progress(self, event: ProgressReported) -> bool:
        node = self._node(event.node) if event.node else self._running
        if node is None or node in self._finished or event.max <= 0:
            return False
        if (self.nodes[node].value, self.nodes[node].max) == (event.value, event.max):
            return False
        state = self._writable(node)
        state.value, state.max = min(event.value, event.max), event.max
        state.start = state.start or self._now()
        state.last_updated = self._now()
        return True

    def stored(self, places: Mapping[tuple[str, str, str], ImageRef]) -> None:
        """Files as the output store now has them (URL, key, type, size), beside where ComfyUI kept them."""
        for node in list(self.nodes):
            state = self._writable(node)
            state.images = [places.get(place_of(image), image) for image in state.images]
            state.files = [FileRef.model_validate(_with_stored([file.model_dump()], places)[0]) for file in state.files]
        for node, output in self.reported.items():
            self.reported[node] = {name: _with_stored(entries, places) for name, entries in output.items()}

    def _on_executed(self, event: NodeExecuted) -> bool:
        self.reported[event.node] = event.output
        node = self._node(event.node, event.display_node)
        if node is None:
            return False
        if node != event.node:
            self._shown_as[event.node] = node
        shown = [output for real, output in self.reported.items() if self._node(real) == node]
        images = [image for output in shown for image in images_in(output)]
        files = [file for output in shown for file in other_files_in(output)]
        changed = (images, files) != (self.nodes[node].images, self.nodes[node].files)
        if changed:
            state = self._writable(node)
            state.images, state.files = images, files
        return self._finish(node) or changed

    def _on_succeeded(self, event: ExecutionSucceeded) -> bool:
        changed = self._finish(self._running) if self._running else False
        return self._finish_all(self._with_ancestors(event.outputs or ())) or changed

    def _on_stopped(self, event: ExecutionFailed | ExecutionInterrupted) -> bool:
        return self._finish_all(str(node) for node in event.details.get("executed") or ())

    def _with_ancestors(self, nodes: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        pending = [node for node in nodes if node in self.nodes]
        while pending:
            node = pending.pop()
            if node not in seen:
                seen.add(node)
                pending.extend(parent for parent in self._parents.get(node, ()) if parent in self.nodes)
        return seen

    _handlers: dict[type, Callable[[ProgressTracker, Any], bool]] = {
        NodesCached: _on_cached,
        NodeExecuting: _on_executing,
        ProgressReported: _on_progress,
        NodeExecuted: _on_executed,
        ExecutionSucceeded: _on_succeeded,
        ExecutionFailed: _on_stopped,
        ExecutionInterrupted: _on_stopped,
    }
