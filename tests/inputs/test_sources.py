"""Which loader values are data, and which are file names left alone."""

from __future__ import annotations

import base64

import pytest

from agent.inputs.sniff import GIF, JPEG, MP3, MP4, PNG, WAV, WEBM, WEBP, sniff
from agent.inputs.sources import Inline, Remote, SourceError, source_of
from files_server import png

PNG_BYTES = png((1, 2, 3))
B64 = base64.b64encode(PNG_BYTES).decode()


@pytest.mark.parametrize("value", ["example.png", "sub/name.png", "name [input]", "sub/name.png [input]",
                                   "a" * 40, "", "ComfyUI_00001_.png", 12, None, ["1", 0]])
def test_plain_names_and_links_are_left_alone(value: object) -> None:
    assert source_of(value, bare_base64=True) is None


def test_data_url_and_bare_base64_become_bytes() -> None:
    assert source_of(f"data:image/png;base64,{B64}", bare_base64=False) == Inline(PNG_BYTES)
    assert source_of(f"DATA:image/png;BASE64,{B64}", bare_base64=False) == Inline(PNG_BYTES)
    assert source_of(B64, bare_base64=True) == Inline(PNG_BYTES)
    wrapped = "\n".join(B64[index:index + 76] for index in range(0, len(B64), 76))
    assert source_of(wrapped, bare_base64=True) == Inline(PNG_BYTES)
    assert source_of(B64.rstrip("="), bare_base64=True) == Inline(PNG_BYTES)
    urlsafe = base64.urlsafe_b64encode(PNG_BYTES).decode()
    assert source_of(urlsafe, bare_base64=True) == Inline(PNG_BYTES)


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
])
def test_data_that_cannot_be_read_is_an_error(value: str, reason: str) -> None:
    with pytest.raises(SourceError, match=reason):
        source_of(value, bare_base64=True)


@pytest.mark.parametrize(("head", "expected"), [
    (PNG_BYTES, PNG), (b"\xff\xd8\xff\xe0rest", JPEG), (b"GIF89a...", GIF), (b"RIFF\0\0\0\0WEBPVP8 ", WEBP),
    (b"\0\0\0\x18ftypisom", MP4), (b"\x1aE\xdf\xa3...", WEBM), (b"RIFF\0\0\0\0WAVEfmt ", WAV), (b"ID3\x04", MP3),
    (b"<html>", None), (b"", None), (b"\0\0\0\x18ftypheic", None),
])
def test_sniffing_reads_the_first_bytes(head: bytes, expected: object) -> None:
    assert sniff(head) == expected
