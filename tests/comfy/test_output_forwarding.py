"""ComfyUI's output reaches the log line by line, bounded, whatever bytes it prints."""

from __future__ import annotations

from agent.comfy.supervisor.output import LineSplitter


def split(chunks: list[bytes], max_line: int = 16) -> list[str]:
    lines: list[str] = []
    splitter = LineSplitter(lines.append, max_line=max_line)
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.close()
    return lines


def test_lines_across_chunk_boundaries() -> None:
    assert split([b"hel", b"lo\nwor", b"ld\n", b"tail"]) == ["hello", "world", "tail"]


def test_very_long_line_is_cut_and_counted_without_growing() -> None:
    assert split([b"x" * 10, b"y" * 1_000_000, b"\nnext\n"]) == ["x" * 10 + "y" * 6 + " ...(999994 more bytes)",
                                                                   "next"]


def test_invalid_utf8_and_crlf() -> None:
    assert split([b"caf\xc3\xa9 \xff\xfe\r\n"]) == ["caf\u00e9 \ufffd\ufffd"]


def test_split_multibyte_character_is_rejoined() -> None:
    assert split([b"caf\xc3", b"\xa9\n"]) == ["caf\u00e9"]
