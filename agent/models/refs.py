"""Which inputs of a prompt name a model by URL (`ModelRef`), judged without fetching anything, so a gateway and
a worker refuse the same bad reference the same way.

A model input is a loader's input listed in the models map (agent/model_folders.py, plus `MODEL_LOADERS`); its
value is a URL (`https://`, `http://`, `s3://`, `oss://`), optionally ending in `#sha256=<64 hex>`, the checksum
the file must have. A URL to a model file anywhere else is refused: ComfyUI would only say the value is not in
its list.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from agent.errors import AgentError, ModelError
from agent.model_folders import MODEL_EXTENSIONS

SCHEMES = ("https", "http", "s3", "oss")
KEY_HEX = 12  # a name's prefix: 48 bits of the URL's hash, unique among any folder's downloads
E = TypeVar("E", bound=AgentError)
_SHA256 = re.compile(r"sha256=([0-9a-fA-F]{64})")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ModelRef:
    """One model input naming a model by URL: where it is, the folder it goes to, the checksum it must have."""

    node_id: str
    input_name: str
    kind: str
    url: str  # without the checksum fragment
    sha256: str | None = None

    @property
    def key(self) -> str:
        """What names this model in its folder, on every instance: the start of its URL's hash."""
        return hashlib.sha256(self.url.encode()).hexdigest()[:KEY_HEX]

    @property
    def basename(self) -> str:
        """The URL's last path part, in characters safe in any file system (`12345` for a Civitai link)."""
        return safe_name(unquote(urlsplit(self.url).path.rstrip("/").rpartition("/")[2])) or "model"

    @property
    def in_bucket(self) -> bool:
        return self.url.split("://", 1)[0].lower() in ("s3", "oss")

    def error(self, reason: str) -> ModelError:
        return failure(ModelError, self.node_id, self.input_name, reason)


def safe_name(name: str) -> str:
    """A file name in characters safe in any file system, at most 120 of them; empty when none is left."""
    return _UNSAFE.sub("_", name).strip("._")[:120]


def failure(kind: type[E], node_id: str, input_name: str, reason: str) -> E:
    """The error naming where the reference was: a graph's node and input, or a request's field (a pull)."""
    if not node_id:
        return kind(f"{input_name}: {reason}", field=input_name, reason=reason)
    return kind(f"node {node_id}, input {input_name!r}: {reason}", node_id=node_id, input=input_name, reason=reason)


def model_error(node_id: str, input_name: str, reason: str) -> ModelError:
    return failure(ModelError, node_id, input_name, reason)


def _scheme(value: str) -> str | None:
    head, separator, _ = value[:16].partition("://")  # a scheme is short: a megabyte of base64 is not read
    return head.lower() if separator and _SCHEME.fullmatch(head) else None


def names_by_url(value: object) -> bool:
    """Whether a model input's value is a URL (the model fetched), not a file name in its folder."""
    return isinstance(value, str) and _scheme(value) in SCHEMES


def has_model_ending(path: str) -> bool:
    return path.lower().endswith(MODEL_EXTENSIONS)


def _looks_like_model_url(value: str) -> bool:
    """A URL of a model file: what only a model input takes."""
    if _scheme(value) not in SCHEMES or any(character.isspace() for character in value):
        return False
    parts = urlsplit(value)
    return has_model_ending(parts.path) or parts.fragment.startswith("sha256=")


def reference(node_id: str, input_name: str, kind: str, value: str) -> ModelRef:
    url, _, fragment = value.strip().partition("#")
    if _scheme(url) not in SCHEMES:
        raise model_error(node_id, input_name, "a model URL is https, http, s3 or oss")
    if not urlsplit(url).netloc:
        raise model_error(node_id, input_name, "the model URL has no host or bucket")
    checksum = _SHA256.fullmatch(fragment) if fragment else None
    if fragment and checksum is None:
        raise model_error(node_id, input_name, "the only fragment a model URL takes is #sha256=<64 hex digits>")
    return ModelRef(node_id, input_name, kind, url, checksum.group(1).lower() if checksum else None)


def model_refs(prompt: dict[str, Any], loaders: Mapping[str, str]) -> list[ModelRef]:
    """The model inputs holding a URL, in the prompt's order; raises for a model URL where no model goes."""
    found = []
    for node_id, node in prompt.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if not isinstance(inputs, dict):
            continue
        for input_name, value in inputs.items():
            if not isinstance(value, str):
                continue
            kind = loaders.get(f"{node.get('class_type')}.{input_name}")
            if kind is not None and _scheme(value) is not None:
                found.append(reference(str(node_id), input_name, kind, value))
            elif kind is None and _looks_like_model_url(value):
                raise model_error(str(node_id), input_name, f"{node.get('class_type')}.{input_name} takes no "
                                  "model; a model URL goes in a loader's model input (MODEL_LOADERS lists them)")
    return found
