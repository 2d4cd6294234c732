"""Which loader inputs hold data to upload, and what that data is: inline base64, a URL to fetch, or an uploaded
asset's content hash.

Plain file names (`example.png`, `sub/name.png`, `name [input]`) are never touched.

An inline input may be tens of megabytes of text, so it is read in linear C passes (str.split, bytes.translate,
binascii), each over at most CHUNK characters, never with a regex: a worker thread doing this hands the event
loop the GIL between two passes. Nothing is decoded to learn the size: a base64 text's follows from its length.
"""

from __future__ import annotations

import binascii
import re
import string
from dataclasses import dataclass

from agent.assets.hashes import is_hash

MIN_BARE_BASE64 = 64  # shorter strings are file names, not pictures
CHUNK = 1 << 20  # characters per pass, about a millisecond of work; a multiple of 4, so chunks decode on their own
_ALPHANUMERIC = (string.ascii_letters + string.digits).encode()
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_SCHEME_NAME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")


class SourceError(ValueError):
    """The value is meant as data but cannot be read as such; the message says why."""


class FetchError(Exception):
    """A URL input could not be turned into bytes; the message says why, in a caller's words."""


@dataclass(frozen=True)
class Inline:
    """Base64 data, checked but not decoded yet: an input over the size cap, or of the wrong kind, never is.

    `text`: the data characters alone (no whitespace, no padding); `urlsafe`: `-_` stand for `+/`."""

    text: bytes
    urlsafe: bool = False

    @property
    def size(self) -> int:
        """The decoded size, from the length alone."""
        return len(self.text) * 3 // 4

    def head(self, count: int) -> bytes:
        """The first `count` bytes (all of a shorter file), decoding only those."""
        quads = -(-count // 3)  # each 4 characters make 3 bytes
        return _decoded(self.text[:4 * quads], self.urlsafe)[:count]

    def decode(self) -> bytes:
        return b"".join([_decoded(self.text[start:start + CHUNK], self.urlsafe)
                         for start in range(0, len(self.text), CHUNK)])


@dataclass(frozen=True)
class Remote:
    url: str

    @property
    def in_bucket(self) -> bool:
        """`oss://` or `s3://`: read with the object store's client, not fetched over HTTP."""
        return self.url.split("://", 1)[0].lower() in ("oss", "s3")


@dataclass(frozen=True)
class Stored:
    """An uploaded asset's bytes, named by their content (`blake3:<hex>`, agent/assets/blobs.py)."""

    digest: str


Source = Inline | Remote | Stored


def _decoded(chars: bytes, urlsafe: bool) -> bytes:
    """Checked data characters (a whole text, or a slice of one starting at a multiple of 4) as bytes."""
    if urlsafe:
        chars = chars.translate(_FROM_URLSAFE)
    return binascii.a2b_base64(chars + b"=" * (-len(chars) % 4), strict_mode=True)


def _compact(text: str) -> bytes | None:
    """`text` without whitespace (str.split's, which is Unicode's, as `\\s` is), or None when that is not ASCII
    (so not base64)."""
    pieces = []
    for start in range(0, len(text), CHUNK):
        piece = "".join(text[start:start + CHUNK].split())
        if not piece.isascii():
            return None
        pieces.append(piece.encode("ascii"))
    return b"".join(pieces)


def _urlsafe(data: bytes) -> bool | None:
    """Which alphabet every character of `data` is in: False for `+/`, True for `-_`, None for neither (a mix)."""
    others = b"".join([data[start:start + CHUNK].translate(None, _ALPHANUMERIC)
                       for start in range(0, len(data), CHUNK)])
    if not others.translate(None, b"+/"):
        return False
    if not others.translate(None, b"-_"):
        return True
    return None


@dataclass(frozen=True)
class _Base64:
    """A text of base64 characters with at most two `=` at its end: the form that makes a value data."""

    data: bytes
    padding: int
    urlsafe: bool

    def inline(self) -> Inline:
        """The data, or an error for a length no base64 has (a dangling character; `xyz==` in `+/` base64,
        which a strict decoder refuses and a URL-safe one takes)."""
        remainder = len(self.data) % 4
        if remainder == 1 or (remainder == 3 and self.padding == 2 and not self.urlsafe):
            raise SourceError("invalid base64")
        return Inline(self.data, self.urlsafe)


def _base64(compact: bytes) -> _Base64 | None:
    data = compact.rstrip(b"=")
    padding = len(compact) - len(data)
    urlsafe = _urlsafe(data)
    if not data or padding > 2 or urlsafe is None:
        return None
    return _Base64(data, padding, urlsafe)


def _data_url(value: str) -> Inline:
    header, comma, payload = value.partition(",")
    if not comma:
        raise SourceError("a data URL needs a comma before its data")
    if not header.lower().endswith(";base64"):
        raise SourceError("only base64 data URLs are accepted (data:<type>;base64,...)")
    compact = _compact(payload)
    if compact == b"":
        return Inline(b"")
    found = _base64(compact) if compact is not None else None
    if found is None:
        raise SourceError("invalid base64")
    return found.inline()


def _bare_base64(value: str) -> Inline | None:
    compact = _compact(value)
    found = _base64(compact) if compact is not None and len(compact) >= MIN_BARE_BASE64 else None
    return found.inline() if found else None


def _scheme(value: str) -> str | None:
    """The scheme of a `scheme://` value. A scheme ends at the first colon, found at C speed; a regex looking
    for where it ends would crawl through megabytes of base64 letters (a zero-filled picture's `AAAA...`)."""
    colon = value.find(":")
    if colon > 0 and value.startswith("//", colon + 1) and _SCHEME_NAME.fullmatch(value, 0, colon):
        return value[:colon]
    return None


def source_of(value: object, bare_base64: bool) -> Source | None:
    """The data a loader input carries, or None for a plain file name left to ComfyUI."""
    if not isinstance(value, str):
        return None
    if value[:5].lower() == "data:":
        return _data_url(value)
    if value.startswith("blake3:"):
        if not is_hash(value):
            raise SourceError("an asset's hash is `blake3:` and 64 lowercase hex digits")
        return Stored(value)
    scheme = _scheme(value)
    if scheme is not None:
        if scheme.lower() not in ("http", "https", "oss", "s3"):
            raise SourceError("only http, https, oss and s3 URLs are accepted")
        return Remote(value)
    return _bare_base64(value) if bare_base64 else None
