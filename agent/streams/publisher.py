"""The subscriber that writes a run's events into its task's log in the shared store, where an event stream on
any instance reads them: `status`, `progress` (the nodes that changed), `preview` (latent previews as data
URLs), `output`, and `end` (the task).

Writes are folded together and made at most every `interval` seconds, one at a time and in order, so a run
shorter than that costs one write at its end; previews are thinned to `PREVIEWS_PER_SECOND` and left out above
`PREVIEW_MAX_BYTES`, since a log entry is read by every stream of the task. A store that is out loses the
entries, never the run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

from agent.errors import AgentError
from agent.logs import log_event
from agent.runs.events import RunEnded, RunEvent, RunOutput, RunPreview, RunProgressed, RunQueued, RunStarted
from agent.stores.log import EventLog
from agent.tasks.model import Task
from agent.tasks.view import task_view

logger = logging.getLogger("agent.streams")

INTERVAL = 0.25
PREVIEWS_PER_SECOND = 2
PREVIEW_MAX_BYTES = 256 * 1024
END_PATIENCE = 10.0  # seconds the end's write may take before the run's outcome is handed back without it


class _Log:
    """One task's pending entries and its writes, one after another."""

    def __init__(self, store: EventLog, task: Task, interval: float) -> None:
        self.store = store
        self.task = task
        self.interval = interval
        self.pending: list[tuple[str, dict[str, Any]]] = []
        self.shown: dict[str, dict[str, Any]] = {}  # each node as the last progress entry told it
        self.progressed = False
        self.preview_at = 0.0
        self.timer: asyncio.TimerHandle | None = None
        self.last: asyncio.Future[None] | None = None
        self.failing = False

    def add(self, kind: str, data: dict[str, Any]) -> None:
        self._progress()  # what changed before this entry comes before it
        self.pending.append((kind, data))
        self._soon()

    def progress(self) -> None:
        self.progressed = True
        self._soon()

    def preview(self, node: str | None, mime: str, data: bytes) -> None:
        now = time.monotonic()
        if len(data) > PREVIEW_MAX_BYTES or now - self.preview_at < 1 / PREVIEWS_PER_SECOND:
            return
        self.preview_at = now
        self.add("preview", {"node": node, "image": f"data:{mime};base64,{base64.b64encode(data).decode()}"})

    def _progress(self) -> None:
        if not self.progressed:
            return
        self.progressed = False
        nodes = {node: state.model_dump(mode="json") for node, state in self.task.progress.items()}
        changed = {node: state for node, state in nodes.items() if self.shown.get(node) != state}
        self.shown = nodes
        if changed:
            self.pending.append(("progress", {"nodes": changed}))

    def _soon(self) -> None:
        if self.timer is None:
            self.timer = asyncio.get_running_loop().call_later(self.interval, self.flush)

    def flush(self) -> asyncio.Future[None] | None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self._progress()
        if self.pending:
            entries, self.pending = self.pending, []
            self.last = asyncio.ensure_future(self._write(self.last, entries))
        return self.last

    async def _write(self, before: asyncio.Future[None] | None, entries: list[tuple[str, dict[str, Any]]]) -> None:
        if before is not None:
            await asyncio.wait({before})
        try:
            await self.store.append_events(self.task.task_id, entries)
        except AgentError as exc:
            if not self.failing:
                log_event(logger, "stream.write_failed", self.task.task_id, level=logging.WARNING, error=exc)
            self.failing = True


class EventPublisher:
    def __init__(self, store: EventLog, interval: float = INTERVAL) -> None:
        self.store = store
        self.interval = interval
        self._logs: dict[str, _Log] = {}

    def notify(self, event: RunEvent) -> None:
        task = event.task
        if isinstance(event, RunQueued):
            self._logs[task.task_id] = _Log(self.store, task, self.interval)
        log = self._logs.get(task.task_id)
        if log is None:
            return
        if isinstance(event, RunQueued | RunStarted):
            log.add("status", {"status": task.status.value})
        elif isinstance(event, RunProgressed):
            log.progress()
        elif isinstance(event, RunPreview):
            log.preview(event.node, event.mime, event.data)
        elif isinstance(event, RunOutput):
            log.add("output", {"node": event.node, "output": event.output})

    async def settle(self, ended: RunEnded) -> None:
        task = ended.task
        log = self._logs.pop(task.task_id, None) or _Log(self.store, task, self.interval)
        log.progressed = True
        log.add("end", task_view(task))
        written = log.flush()
        if written is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(written), END_PATIENCE)
