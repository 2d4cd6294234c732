"""Which loader inputs of a prompt carry data (`Slot`), and what can be judged of it without fetching anything:
a gateway refuses a bad input before a GPU instance is woken for it, and a worker checks the same way again
once it holds the bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from agent.buckets.location import parse_object_url
from agent.config import InputSettings
from agent.errors import InputImageError
from agent.inputs.sniff import HEAD_BYTES, FileType, Kind, sniff
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

    def __init__(self, inputs: InputSettings) -> None:
        self.max_bytes = inputs.max_bytes
        self._inputs: dict[str, tuple[str, tuple[Kind, ...], bool]] = {}
        for node_class, input_name in inputs.media_loaders:
            self._inputs[node_class] = (input_name, ("video", "audio", "image"), False)
        for node_class, input_name in inputs.image_loaders:
            self._inputs[node_class] = (input_name, ("image",), True)

    def slots(self, prompt: dict[str, Any]) -> list[Slot]:
        """The loader inputs that carry data; raises for data that cannot be read at all. Reads every inline
        input's text (sources.py): callers on the event loop run it in a worker thread."""
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

    def kind(self, slot: Slot, size: int, head: bytes) -> FileType:
        """What the slot's file is, judged before all its bytes are at hand: its size (a base64 text's follows
        from its length) within the cap, not empty, and its first bytes of a kind the loader takes."""
        if size > self.max_bytes:
            raise slot.error(f"larger than the {self.max_bytes}-byte limit")
        if not size:
            raise slot.error("empty file")
        file_type = sniff(head)
        if file_type is None or file_type.kind not in slot.kinds:
            found = f" (it is {file_type.mime})" if file_type else ""
            raise slot.error(f"not {' or '.join(_WITH_ARTICLE[kind] for kind in slot.kinds)} file{found}")
        return file_type

    def file(self, slot: Slot, data: bytes) -> File:
        """Fetched bytes, checked and named."""
        return _named(data, self.kind(slot, len(data), data[:HEAD_BYTES]))

    def inline_file(self, slot: Slot, inline: Inline) -> File:
        """Inline data, decoded only once its size and kind passed: costly on a large input, so callers on the
        event loop run it in a worker thread, as they do `slots`."""
        file_type = self.kind(slot, inline.size, inline.head(HEAD_BYTES))
        return _named(inline.decode(), file_type)

    def check(self, prompt: dict[str, Any]) -> None:
        """Every data input readable, inline data of the right kind and size, bucket addresses well formed; what
        a URL or an object holds is known only once it is fetched. Nothing is decoded beyond a file's first
        bytes, but reading a large input's text is still work for a worker thread."""
        for slot in self.slots(prompt):
            if isinstance(slot.source, Inline):
                self.kind(slot, slot.source.size, slot.source.head(HEAD_BYTES))
            elif isinstance(slot.source, Remote) and slot.source.in_bucket:
                try:
                    parse_object_url(slot.source.url)
                except ValueError as exc:
                    raise slot.error(str(exc)) from None


def _named(data: bytes, file_type: FileType) -> File:
    return File(data, f"agent-{hashlib.sha256(data).hexdigest()[:32]}.{file_type.extension}", file_type.mime)
