"""One coalescing outbox for what the runs' subscribers write elsewhere: the store's record of each task, its
event log, its webhook.

Per key (a task id), what is put is folded into one pending batch (the newest record replaces the last, log
entries add up); the key's pacer writes the batch `interval` seconds after its first item, and again every
`interval` while more come, so a run shorter than that costs one write, at its end. A key's writes go one at a
time and in the order their items came. `close` is the key's last flush: what is pending is written at once,
after any write still in flight, and the caller awaits it with its own patience (or none). A write that fails
with an AgentError is logged once, and so is its recovery; the caller of `close` gets the last one's error.
Subscribers keep only their policy: what to put, how to fold it, how to write it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.errors import AgentError
from agent.logs import log_event

Item = TypeVar("Item")
Batch = TypeVar("Batch")


@dataclass
class _Box(Generic[Batch]):
    """A key's state: what waits for its turn, the pacer that will write it, the last write."""

    pending: Batch | None = None
    pacer: asyncio.Task[None] | None = None
    last: asyncio.Future[None] | None = None
    failing: bool = False


class Outbox(Generic[Item, Batch]):
    """`write(key, batch)` does the I/O; `fold(pending, item)` adds an item to what is pending (None at first);
    `name` prefixes the log's `write_failed` and `write_recovered`."""

    def __init__(self, write: Callable[[str, Batch], Awaitable[None]], fold: Callable[[Batch | None, Item], Batch],
                 interval: float, logger: logging.Logger, name: str) -> None:
        self.write = write
        self.fold = fold
        self.interval = interval
        self.logger = logger
        self.name = name
        self._boxes: dict[str, _Box[Batch]] = {}

    def put(self, key: str, item: Item) -> None:
        box = self._boxes.get(key)
        if box is None:
            box = self._boxes[key] = _Box()
        box.pending = self.fold(box.pending, item)
        if box.pacer is None or box.pacer.done():
            box.pacer = asyncio.ensure_future(self._pace(key, box))

    def close(self, key: str, *items: Item) -> asyncio.Future[None] | None:
        """The key's last flush, `items` folded in: the write that ends with it (None when nothing was ever
        written or pending). Awaiting it raises what that write raised."""
        box = self._boxes.pop(key, None) or _Box()
        if box.pacer is not None:
            box.pacer.cancel()  # only its wait: a write it started goes on
        for item in items:
            box.pending = self.fold(box.pending, item)
        self._dispatch(key, box)
        return box.last

    async def _pace(self, key: str, box: _Box[Batch]) -> None:
        while box.pending is not None:
            await asyncio.sleep(self.interval)
            written = self._dispatch(key, box)
            if written is not None:
                with contextlib.suppress(AgentError):  # logged in `_write`; the next batch carries on
                    await asyncio.shield(written)

    def _dispatch(self, key: str, box: _Box[Batch]) -> asyncio.Future[None] | None:
        """Start writing what is pending, once the write before it is done."""
        if box.pending is None:
            return None
        batch, box.pending = box.pending, None
        box.last = asyncio.ensure_future(self._write(key, box, batch, box.last))
        return box.last

    async def _write(self, key: str, box: _Box[Batch], batch: Batch, before: asyncio.Future[None] | None) -> None:
        if before is not None:
            await asyncio.wait({before})
        try:
            await self.write(key, batch)
        except AgentError as exc:
            if not box.failing:
                log_event(self.logger, f"{self.name}.write_failed", key, level=logging.WARNING, error=exc)
            box.failing = True
            raise
        if box.failing:
            log_event(self.logger, f"{self.name}.write_recovered", key)
        box.failing = False
