"""One log line per event, `key=value` pairs keyed by task id, safe to grep and to ship.

Values are cut short and flattened to one line, so a base64 blob, a traceback or a hostile string can never
flood the log or forge a second line.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

MAX_VALUE_CHARS = 300


class _UTCFormatter(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def setup_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_UTCFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


_CONTROL = {code: f"\\x{code:02x}" for code in (*range(32), 127)} | {10: "\\n", 13: "\\r", 9: "\\t"}


def one_line(text: str) -> str:
    """Control characters escaped, so no text can end a log line early or forge the next one."""
    return text.translate(_CONTROL)


def clean(value: Any) -> str:
    """A log value: one short line, quoted when it has spaces, never megabytes."""
    text = str(value)
    if len(text) > MAX_VALUE_CHARS:
        text = f"{text[:MAX_VALUE_CHARS]}...({len(text)} chars)"
    text = one_line(text)
    return f'"{text}"' if (" " in text or not text) else text


def log_event(logger: logging.Logger, event: str, task: str | None = None, level: int = logging.INFO,
              **fields: Any) -> None:
    if not logger.isEnabledFor(level):
        return
    parts = [f"task={task}"] if task else []
    parts.append(event)
    parts.extend(f"{key}={clean(value)}" for key, value in fields.items() if value is not None)
    logger.log(level, " ".join(parts))
