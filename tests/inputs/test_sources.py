"""Which loader values are data, and which are file names left alone; what the data decodes to."""

from __future__ import annotations

import base64
import binascii
import random
import re
from collections.abc import Callable

import pytest

from agent.inputs import sources
from agent.inputs.sniff import GIF, HEAD_BYTES, JPEG, MP3, MP4, PNG, WAV, WEBM, WEBP, sniff
from agent.inputs.sources import Inline, Remote, SourceError, source_of
from files_server import png

PNG_BYTES = png((1, 2, 3))
B64 = base64.b64encode(PNG_BYTES).decode()
WIDE = PNG_BYTES + bytes(range(256))  # every base64 character in its text
URLSAFE = base64.urlsafe_b64encode(WIDE).decode()


def decoded(value: object, bare_base64: bool = True) -> bytes:
    source = source_of(value, bare_base64)
    assert isinstance(source, Inline), source
    return source.decode()


@pytest.mark.parametrize("value", ["example.png", "sub/name.png", "name [input]", "sub/name.png [input]",
                                   "a" * 40, "", "ComfyUI_00001_.png", 12, None, ["1", 0]])
def test_plain_names_and_links_are_left_alone(value: object) -> None:
    assert source_of(value, bare_base64=True) is None


def test_data_url_and_bare_base64_become_bytes() -> None:
    assert decoded(f"data:image/png;base64,{B64}", bare_base64=False) == PNG_BYTES
    assert decoded(f"DATA:image/png;BASE64,{B64}", bare_base64=False) == PNG_BYTES
    assert decoded(B64) == PNG_BYTES
    assert decoded(B64.rstrip("=")) == PNG_BYTES


@pytest.mark.parametrize("separator", ["\n", "\r\n", " ", "\t", "\u00a0", "\u2028", "\x1c"])
def test_whitespace_anywhere_is_ignored(separator: str) -> None:
    """Any of str.isspace's whitespace, as the regex this replaced (`\\s`) ignored."""
    wrapped = separator.join(B64[index:index + 76] for index in range(0, len(B64), 76))
    assert decoded(wrapped) == PNG_BYTES
    assert decoded(f"data:image/png;base64,{separator}{wrapped}{separator}", bare_base64=False) == PNG_BYTES
    assert decoded(separator.join(B64)) == PNG_BYTES


def test_urlsafe_base64_with_or_without_padding() -> None:
    for text in (URLSAFE, URLSAFE.rstrip("=")):
        assert decoded(text) == WIDE
        assert decoded(f"data:image/png;base64,{text}", bare_base64=False) == WIDE


def test_both_alphabets_at_once_are_not_base64() -> None:
    mixed = "+" + "A" * 70 + "-"
    assert source_of(mixed, bare_base64=True) is None
    with pytest.raises(SourceError, match="invalid base64"):
        source_of(f"data:image/png;base64,{mixed}", bare_base64=True)


def test_bare_base64_only_where_the_loader_takes_it() -> None:
    assert source_of(B64, bare_base64=False) is None


def test_urls() -> None:
    assert source_of("https://example.com/a.png", bare_base64=True) == Remote("https://example.com/a.png")
    assert source_of("HTTP://example.com/a.png", bare_base64=False) == Remote("HTTP://example.com/a.png")


@pytest.mark.parametrize(("value", "reason"), [
    ("file:///etc/passwd", "only http, https, oss and s3"),
    ("ftp://example.com/a.png", "only http, https, oss and s3"),
    ("data:image/png,rawbytes", "only base64 data URLs"),
    ("data:image/png;base64", "comma"),
    ("data:image/png;base64,@@@@", "invalid base64"),
    ("data:image/png;base64,QUJD=A", "invalid base64"),
    ("data:image/png;base64,QUJDR", "invalid base64"),
    ("data:image/png;base64,QUJ==", "invalid base64"),
    ("data:image/png;base64,==", "invalid base64"),
    ("data:image/png;base64,QUJD===", "invalid base64"),
    ("data:image/png;base64,QUJDé", "invalid base64"),
    ("A" * 65, "invalid base64"),
])
def test_data_that_cannot_be_read_is_an_error(value: str, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        source_of(value, bare_base64=True)


def test_size_follows_from_the_length_and_head_is_the_first_bytes() -> None:
    data = bytes(range(256)) * 2
    for length in range(40):
        for encode in (base64.b64encode, base64.urlsafe_b64encode):
            text = encode(data[:length]).decode()
            for value in (text, text.rstrip("=")):
                source = source_of(f"data:;base64,{value}", bare_base64=False)
                assert isinstance(source, Inline)
                assert (source.size, source.decode(), source.head(HEAD_BYTES)) == (
                    length, data[:length], data[:min(length, HEAD_BYTES)])


def test_a_large_input_decodes_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    data = random.Random(7).randbytes(5000)
    monkeypatch.setattr(sources, "CHUNK", 64)
    wrapped = "\n".join(base64.urlsafe_b64encode(data).decode()[index:index + 57] for index in range(0, 7000, 57))
    assert decoded(wrapped) == data
    assert decoded(base64.b64encode(data).decode().rstrip("=")) == data


def _regex_reading(value: object, bare_base64: bool) -> bytes | str | None:
    """What the regex implementation this one replaced made of a value: its bytes, None for a file name, or
    "error"; the oracle that keeps which values are data, and what they decode to, unchanged."""
    whitespace, standard, urlsafe = re.compile(r"\s+"), re.compile(r"[A-Za-z0-9+/]+={0,2}"), \
        re.compile(r"[A-Za-z0-9_-]+={0,2}")

    def decode(text: str) -> bytes | str:
        compact = whitespace.sub("", text)
        if not compact:
            return b""
        padded = compact + "=" * (-len(compact) % 4)
        try:
            if standard.fullmatch(compact):
                return base64.b64decode(padded, validate=True)
            if urlsafe.fullmatch(compact):
                return base64.urlsafe_b64decode(padded)
        except (binascii.Error, ValueError):
            pass
        return "error"

    if not isinstance(value, str):
        return None
    if value[:5].lower() == "data:":
        return decode(value.partition(",")[2])
    if re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", value):
        return "url"
    compact = whitespace.sub("", value)
    if bare_base64 and len(compact) >= 64 and (standard.fullmatch(compact) or urlsafe.fullmatch(compact)):
        return decode(value)
    return None


def _reading(value: object, bare_base64: bool) -> bytes | str | None:
    try:
        source = source_of(value, bare_base64)
    except SourceError as exc:
        return "url" if "URLs are accepted" in str(exc) else "error"
    return source.decode() if isinstance(source, Inline) else "url" if isinstance(source, Remote) else None


@pytest.mark.parametrize("chunk", [4, 8, sources.CHUNK])
def test_the_same_values_are_data_and_decode_the_same_as_with_regexes(monkeypatch: pytest.MonkeyPatch,
                                                                      chunk: int) -> None:
    monkeypatch.setattr(sources, "CHUNK", chunk)
    rng = random.Random(chunk)
    letters, weights = zip(*{"A": 20, "Q": 20, "g": 20, "w": 20, "0": 10, "9": 10, "+": 4, "/": 4, "-": 4, "_": 4,
                              "=": 8, " ": 3, "\n": 2, "\u00a0": 1, ".": 1, ":": 1, "é": 1}.items(), strict=True)
    pick: Callable[[int], str] = lambda count: "".join(rng.choices(letters, weights, k=count))  # noqa: E731
    for _ in range(6000):
        tail = pick(rng.randint(0, 12))
        one_alphabet = "".join(rng.choices(rng.choice(["AQgw09+/", "AQgw09-_"]), k=rng.randint(56, 66)))
        for value, bare in ((f"data:image/png;base64,{tail}", False), (one_alphabet + tail, True),
                            (pick(rng.randint(60, 68)), True)):
            assert _reading(value, bare) == _regex_reading(value, bare), value


@pytest.mark.parametrize("value", ["s3://bucket/key", "OSS://b/k", "a:b://x", "1http://x", "http+x.y-z://a", "://x",
                                   "x:/y", "http:/x", "h://", "A" * 100 + "://x", "A" * 100 + ":x://y", "é://x"])
def test_schemes_are_judged_as_before(value: str) -> None:
    for bare in (True, False):
        assert _reading(value, bare) == _regex_reading(value, bare)


@pytest.mark.parametrize(("head", "expected"), [
    (PNG_BYTES, PNG), (b"\xff\xd8\xff\xe0rest", JPEG), (b"GIF89a...", GIF), (b"RIFF\0\0\0\0WEBPVP8 ", WEBP),
    (b"\0\0\0\x18ftypisom", MP4), (b"\x1aE\xdf\xa3...", WEBM), (b"RIFF\0\0\0\0WAVEfmt ", WAV), (b"ID3\x04", MP3),
    (b"<html>", None), (b"", None), (b"\0\0\0\x18ftypheic", None),
])
def test_sniffing_reads_the_first_bytes(head: bytes, expected: object) -> None:
    assert sniff(head) == expected
    assert sniff(head[:HEAD_BYTES]) == expected, "a kind is judged from the first HEAD_BYTES bytes alone"
