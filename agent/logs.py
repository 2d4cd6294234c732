"""One log line per event, keyed by task id, safe to grep and to ship: `key=value` text for people,
`LOG_FORMAT=json` (one object per line) for log collectors.

Values are cut short and flattened to one line, so a base64 blob, a traceback or a hostile string can never
flood the log or forge a second line. The standard library's logging does the rest; a JSON formatter is a few
lines, not worth a dependency.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

MAX_VALUE_CHARS = 300


def _utc(record: logging.LogRecord) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{stamp}.{int(record.msecs):03d}Z"


class _TextFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc(record)


class _JSONFormatter(logging.Formatter):
    """`{"time", "level", "logger", "event", "task", ...fields}`; a line that is not an event (ComfyUI's own
    output) keeps its text as `message`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"time": _utc(record), "level": record.levelname, "logger": record.name}
        if isinstance(record.msg, _Line) and not record.args:
            line.update(record.msg.structured())
        else:
            line["message"] = one_line(record.getMessage())
        if record.exc_info:
            line["exception"] = short(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def setup_logging(level: str, form: str = "text") -> None:
    handler = logging.StreamHandler(sys.stdout)
    formatter = _JSONFormatter() if form == "json" else _TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def one_line(text: str) -> str:
    """Control characters escaped, so no text can end a log line early or forge the next one."""
    return text.translate(_CONTROL)


def short(value: Any) -> str:
    """One short line, never megabytes."""
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}...({len(text)} chars)"
    return one_line(text)


def clean(value: Any) -> str:
    """A text log value: short, quoted when it has spaces."""
    text = short(value)
    return f'"{text}"' if (" " in text or not text) else text


class _Line:
    """An event's text line, written only if a text formatter asks for it (`str`); the JSON formatter reads the
    fields instead, so each event is prepared once, whichever format is on."""

    __slots__ = ("event", "fields", "task")

    def __init__(self, event: str, task: str | None, fields: dict[str, Any]) -> None:
        self.event, self.task, self.fields = event, task, fields

    def __str__(self) -> str:
        parts = [f"task={self.task}"] if self.task else []
        parts.append(self.event)
        parts.extend(f"{key}={clean(value)}" for key, value in self.fields.items())
        return " ".join(parts)

    def structured(self) -> dict[str, Any]:
        return {"event": self.event, **({"task": self.task} if self.task else {}),
                **{key: value if isinstance(value, bool | int | float) else short(value)
                   for key, value in self.fields.items()}}


def log_event(logger: logging.Logger, event: str, task: str | None = None, level: int = logging.INFO,
              **fields: Any) -> None:
    if logger.isEnabledFor(level):
        logger.log(level, _Line(event, task, {key: value for key, value in fields.items() if value is not None}))
