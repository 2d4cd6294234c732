"""Which loader inputs of a prompt carry data (`Slot`), and what can be judged of it without fetching anything:
a gateway refuses a bad input before a GPU instance is woken for it, and a worker checks the same way again
once it holds the bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agent.buckets.location import parse_object_url
from agent.config import Settings
from agent.errors import InputImageError
from agent.inputs.sniff import Kind, sniff
from agent.inputs.sources import Inline, Remote, Source, SourceError, source_of

_WITH_ARTICLE = {"image": "an image", "video": "a video", "audio": "an audio"}


@dataclass(frozen=True)
class Slot:
    """One loader input that carries data: where it is, and what kind of file it must hold."""

    node_id: str
    input_name: str
    kinds: tuple[Kind, ...]
    source: Source

    def error(self, reason: str) -> InputImageError:
        return InputImageError(f"node {self.node_id}, input {self.input_name!r}: {reason}",
                               node_id=self.node_id, input=self.input_name, reason=reason)


@dataclass(frozen=True)
class File:
    """Checked bytes, named by their content."""

    data: bytes
    name: str
    mime: str


class Loaders:
    """The loader inputs of IMAGE_LOADERS and MEDIA_LOADERS, and the cap on one file."""

    def __init__(self, settings: Settings) -> None:
        self.max_bytes = settings.input_max_bytes
        self._inputs: dict[str, tuple[str, tuple[Kind, ...], bool]] = {}
        for node_class, input_name in settings.media_loaders:
            self._inputs[node_class] = (input_name, ("video", "audio", "image"), False)
        for node_class, input_name in settings.image_loaders:
            self._inputs[node_class] = (input_name, ("image",), True)

    def slots(self, prompt: dict[str, Any]) -> list[Slot]:
        """The loader inputs that carry data; raises for data that cannot be read at all."""
        found = []
        for node_id, node in prompt.items():
            loader = self._inputs.get(str(node.get("class_type")))
            if loader is None:
                continue
            input_name, kinds, bare_base64 = loader
            value = (node.get("inputs") or {}).get(input_name)
            try:
                source = source_of(value, bare_base64)
            except SourceError as exc:
                raise Slot(node_id, input_name, kinds, Inline(b"")).error(str(exc)) from None
            if source is not None:
                found.append(Slot(node_id, input_name, kinds, source))
        return found

    def file(self, slot: Slot, data: bytes) -> File:
        """The slot's bytes, checked: not empty, within the cap, of a kind the loader takes."""
        if len(data) > self.max_bytes:
            raise slot.error(f"larger than the {self.max_bytes}-byte limit")
        if not data:
            raise slot.error("empty file")
        file_type = sniff(data)
        if file_type is None or file_type.kind not in slot.kinds:
            found = f" (it is {file_type.mime})" if file_type else ""
            raise slot.error(f"not {' or '.join(_WITH_ARTICLE[kind] for kind in slot.kinds)} file{found}")
        return File(data, f"agent-{hashlib.sha256(data).hexdigest()[:32]}.{file_type.extension}", file_type.mime)

    def check(self, prompt: dict[str, Any]) -> None:
        """Every data input readable, inline data of the right kind and size, bucket addresses well formed; what
        a URL or an object holds is known only once it is fetched."""
        for slot in self.slots(prompt):
            if isinstance(slot.source, Inline):
                self.file(slot, slot.source.data)
            elif isinstance(slot.source, Remote) and slot.source.in_bucket:
                try:
                    parse_object_url(slot.source.url)
                except ValueError as exc:
                    raise slot.error(str(exc)) from None
