"""ComfyUI's output reaches the log line by line, bounded, whatever bytes it prints."""

from __future__ import annotations

import logging

from agent.comfy.supervisor.output import Levels, LineSplitter


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


def test_a_redrawn_progress_bar_is_one_line_as_it_last_stood() -> None:
    bar = b"".join(b"\r %3d%%|" % percent + b"#" * (percent // 10) for percent in range(0, 101, 5))
    assert split([b"got prompt\n", bar[:40], bar[40:], b"\n", b"Prompt executed in 1.2 seconds\r\n"], 64) == [
        "got prompt", " 100%|##########", "Prompt executed in 1.2 seconds"]


def test_a_carriage_return_at_a_chunk_end_restarts_the_line_only_if_the_line_goes_on() -> None:
    assert split([b"50%\r", b"100%\n", b"done\r", b"\n"]) == ["100%", "done"]


def test_a_bar_redrawn_past_the_cap_keeps_its_last_state() -> None:
    assert split([b"\r" + b"x" * 100] * 50 + [b"\rlast\n"], 16) == ["last"]


def test_tracebacks_are_errors_warnings_warnings_and_the_rest_information() -> None:
    levels = Levels()
    lines = ["got prompt", "!!! Exception during processing !!! boom", "Traceback (most recent call last):",
             '  File "/ComfyUI/execution.py", line 496, in execute', "    output_data = get_output_data()",
             "RuntimeError: boom", "Prompt executed in 0.01 seconds",
             "/ComfyUI/comfy/model.py:12: UserWarning: TypedStorage is deprecated", "WARNING: no GPU found"]
    assert [logging.getLevelName(levels.of(line)) for line in lines] == [
        "INFO", "ERROR", "ERROR", "ERROR", "ERROR", "ERROR", "INFO", "WARNING", "WARNING"]
