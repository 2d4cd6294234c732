"""GET /api/tasks/{id}/events, and POST /api/run with `Accept: text/event-stream`: a task's events as Server-Sent
Events, on any instance, read from the task's log in the shared store.

Every entry goes out with its log id, so a client that reconnects with `Last-Event-ID` (browsers do) gets what
came after, nothing twice. A comment every `HEARTBEAT` seconds keeps proxies from closing a quiet stream. The
stream ends after `end`. When the log holds no end but the task has ended all the same (its instance was lost,
or the log expired), the end is told from the task's record. Each instance serves at most `MAX_EVENT_STREAMS`
at once: beyond, 429 with `Retry-After`.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from agent.api.security import principal_of
from agent.api.services import Services
from agent.errors import RequestParamsError
from agent.logs import log_event
from agent.stores import Stores
from agent.stores.log import LoggedEvent
from agent.stores.records import TaskRecords
from agent.tasks.model import check_task_id
from agent.tasks.view import task_view

EVENT_ID = re.compile(r"\d{1,20}(-\d{1,20})?")
HEARTBEAT = 15.0
READ_WAIT = 5.0  # one read of the log waits this long for an entry; then the task's record is looked at

logger = logging.getLogger("agent.api")


@dataclass(frozen=True)
class Told:
    """What a follower of a task's log is told: an entry, the end (`id` None when told from the task's record),
    or `heartbeat` (nothing for `HEARTBEAT` seconds)."""

    kind: str
    data: Any
    id: str | None = None


def _frame(told: Told) -> bytes:
    lines = [f"id: {told.id}"] if told.id is not None else []
    lines += [f"event: {told.kind}", f"data: {json.dumps(told.data, separators=(',', ':'))}"]
    return ("\n".join(lines) + "\n\n").encode()


async def _ended_without_a_log(records: TaskRecords, task_id: str) -> Told | None:
    """The end from the task's record, when it ended and its log will not tell it."""
    task = await records.get(task_id)
    if task is None or task.status.finished:
        return Told("end", task_view(task) if task is not None else {"task_id": task_id})
    return None


async def stream_events(request: web.Request, stores: Stores, task_id: str,
                        after: str | None) -> web.StreamResponse:
    """Serve the task's events after `after` until its end; the caller holds a stream slot. A client that goes
    away is no error: a browser closes its EventSource whenever its page is left."""
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                                           "X-Accel-Buffering": "no", "X-Task-Id": task_id})
    await response.prepare(request)
    try:
        async for batch in follow(stores, task_id, after):
            frames = b"".join(b": heartbeat\n\n" if told.kind == "heartbeat" else _frame(told) for told in batch)
            await (response.write_eof if batch[-1].kind == "end" else response.write)(frames)
    except ConnectionResetError:
        log_event(logger, "stream.closed", task_id, level=logging.DEBUG, by="client")
    return response


def _up_to_end(entries: list[LoggedEvent]) -> list[Told]:
    """The entries up to the end (nothing follows it)."""
    told = []
    for entry in entries:
        told.append(Told(entry.kind, entry.data, entry.id))
        if entry.kind == "end":
            break
    return told


async def follow(stores: Stores, task_id: str, after: str | None) -> AsyncIterator[list[Told]]:
    """The task's log after `after`, as it grows, until its end (the stream of every surface reads this): each
    time what came since the last, at once, so a stream writes it in one go and can tell what is already past."""
    quiet_since = time.monotonic()
    while True:
        if entries := await stores.log.read_events(task_id, after, READ_WAIT):
            batch = _up_to_end(entries)
            yield batch
            if batch[-1].kind == "end":
                return
            after, quiet_since = batch[-1].id, time.monotonic()
            continue
        ended = await _ended_without_a_log(stores.records, task_id)
        if ended is not None:
            more = await stores.log.read_events(task_id, after, 0)  # an end written just now wins over the record
            if not any(entry.kind == "end" for entry in more):
                yield [*_up_to_end(more), ended]
                return
            continue
        if time.monotonic() - quiet_since >= HEARTBEAT:
            yield [Told("heartbeat", None)]
            quiet_since = time.monotonic()


def last_event_id(request: web.Request) -> str | None:
    """The id to resume after: digits, or Redis's `digits-digits`; anything else is the caller's mistake."""
    given = [value for value in (request.headers.get("Last-Event-ID"), request.query.get("last_event_id"))
             if value is not None]
    if any(EVENT_ID.fullmatch(value) is None for value in given):
        raise RequestParamsError("Last-Event-ID must be an id this stream sent (digits, or digits-digits)")
    return given[0] if given else None


async def task_events(request: web.Request, services: Services) -> web.StreamResponse:
    task_id = check_task_id(request.match_info["task_id"])
    await services.front.owned(task_id, principal_of(request))  # unknown or another key's: 404 before the stream
    with services.stream_slots.taken():
        return await stream_events(request, services.stores, task_id, last_event_id(request))
