"""Server-Sent Events read the way a browser's EventSource reads them: `id`, `event`, `data` fields, a blank line
ending each event, comments (`:`) skipped."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Sse:
    id: str | None
    event: str
    data: Any


async def read_events(response: aiohttp.ClientResponse, limit: int | None = None) -> list[Sse]:
    """Every event until the stream closes (or `limit` events); comments are counted as nothing."""
    events: list[Sse] = []
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields[name] = value
            continue
        if fields:
            events.append(Sse(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])))
            fields = {}
            if limit is not None and len(events) >= limit:
                break
    return events
