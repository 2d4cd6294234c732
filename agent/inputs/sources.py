"""Which loader inputs hold data to upload, and what that data is: inline bytes, or a URL to fetch.

Plain file names (`example.png`, `sub/name.png`, `name [input]`) are never touched.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

MIN_BARE_BASE64 = 64  # shorter strings are file names, not pictures
_BASE64 = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_BASE64_URLSAFE = re.compile(r"[A-Za-z0-9_-]+={0,2}")
_WHITESPACE = re.compile(r"\s+")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")


class SourceError(ValueError):
    """The value is meant as data but cannot be read as such; the message says why."""



class FetchError(Exception):
    """A URL input could not be turned into bytes; the message says why, in a caller's words."""

@dataclass(frozen=True)
class Inline:
    data: bytes


@dataclass(frozen=True)
class Remote:
    url: str

    @property
    def in_bucket(self) -> bool:
        """`oss://` or `s3://`: read with the object store's client, not fetched over HTTP."""
        return self.url.split("://", 1)[0].lower() in ("oss", "s3")


Source = Inline | Remote


def _decode(text: str) -> bytes:
    compact = _WHITESPACE.sub("", text)
    if not compact:
        return b""
    padded = compact + "=" * (-len(compact) % 4)
    try:
        if _BASE64.fullmatch(compact):
            return base64.b64decode(padded, validate=True)
        if _BASE64_URLSAFE.fullmatch(compact):
            return base64.urlsafe_b64decode(padded)
    except (binascii.Error, ValueError):
        pass
    raise SourceError("invalid base64")


def _data_url(value: str) -> Inline:
    header, comma, payload = value.partition(",")
    if not comma:
        raise SourceError("a data URL needs a comma before its data")
    if not header.lower().endswith(";base64"):
        raise SourceError("only base64 data URLs are accepted (data:<type>;base64,...)")
    return Inline(_decode(payload))


def _looks_like_bare_base64(value: str) -> bool:
    compact = _WHITESPACE.sub("", value)
    return len(compact) >= MIN_BARE_BASE64 and bool(_BASE64.fullmatch(compact) or _BASE64_URLSAFE.fullmatch(compact))


def source_of(value: object, bare_base64: bool) -> Source | None:
    """The data a loader input carries, or None for a plain file name left to ComfyUI."""
    if not isinstance(value, str):
        return None
    if value[:5].lower() == "data:":
        return _data_url(value)
    if _SCHEME.match(value):
        if value.split("://", 1)[0].lower() not in ("http", "https", "oss", "s3"):
            raise SourceError("only http, https, oss and s3 URLs are accepted")
        return Remote(value)
    if bare_base64 and _looks_like_bare_base64(value):
        return Inline(_decode(value))
    return None
