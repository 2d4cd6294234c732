"""One line per event, keyed by task id: `key=value` text for people, one JSON object per line for collectors,
and neither ever carries a blob or a second line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from agent.logs import log_event, setup_logging


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    yield logging.getLogger("agent.test"), stream
    root.handlers[:], root.level = saved, level


def lines(form: str, stream: io.StringIO, logger: logging.Logger) -> list[str]:
    setup_logging("INFO", form)
    logging.getLogger().handlers[0].setStream(stream)  # type: ignore[attr-defined]  # a StreamHandler
    log_event(logger, "run.end", "t-1", status="succeeded", seconds=0.25, error=None, blob="A" * 5000)
    log_event(logger, "run.note", note="two\nlines")
    logger.info("plain text %s", "from a library")
    return stream.getvalue().splitlines()


def test_text_lines_are_key_value_short_and_single(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    first, second, third = lines("text", stream, logger)
    assert first.endswith("INFO agent.test task=t-1 run.end status=succeeded seconds=0.25 "
                          f'blob="{"A" * 300}...(5000 chars)"')
    assert "error=" not in first and second.endswith("run.note note=two\\nlines")
    assert third.endswith("plain text from a library")


def test_json_lines_carry_the_event_its_task_and_typed_fields(captured: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = captured
    first, second, third = (json.loads(line) for line in lines("json", stream, logger))
    assert {key: first[key] for key in ("level", "logger", "event", "task", "status", "seconds")} == {
        "level": "INFO", "logger": "agent.test", "event": "run.end", "task": "t-1", "status": "succeeded",
        "seconds": 0.25}
    assert "error" not in first and first["blob"].endswith("...(5000 chars)") and first["time"].endswith("Z")
    assert second["note"] == "two\\nlines" and "task" not in second
    assert third["message"] == "plain text from a library"
