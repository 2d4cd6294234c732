"""The subscriber that writes a run's events into its task's log in the shared store, where an event stream on
any instance reads them: `status`, `models` (the models named by URL as they download), `progress` (the nodes
that changed), `preview` (latent previews as data URLs), `output`, and `end` (the task).

Entries go through the outbox (agent/runs/outbox.py), folded together and written at most every `interval`
seconds, one write at a time and in order, so a run shorter than that costs one write at its end. Progress is
folded as the newest map and told as the nodes that changed since the last entry, when its write begins: a
sampler step costs no more than handing over its map. Previews are thinned to `PREVIEWS_PER_SECOND` and left out
above `PREVIEW_MAX_BYTES`, since a log entry is read by every stream of the task. A store that is out loses the
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
from agent.runs.events import (
    RunEnded,
    RunEvent,
    RunModelsProgressed,
    RunOutput,
    RunPreview,
    RunProgressed,
    RunQueued,
    RunStarted,
)
from agent.runs.outbox import Outbox
from agent.stores.log import EventLog
from agent.tasks.model import Progress
from agent.tasks.view import task_view

logger = logging.getLogger("agent.streams")

INTERVAL = 0.25
PREVIEWS_PER_SECOND = 2
PREVIEW_MAX_BYTES = 256 * 1024
END_PATIENCE = 10.0  # seconds the end's write may take before the run's outcome is handed back without it

Entry = tuple[str, dict[str, Any]]
Item = Entry | Progress  # an entry as it is logged, or the progress map it is told from


def _fold(pending: list[Item] | None, item: Item) -> list[Item]:
    """Entries add up; a newer map replaces one no entry follows yet (what changed before an entry is told
    before it)."""
    pending = pending if pending is not None else []
    if isinstance(item, dict) and pending and isinstance(pending[-1], dict):
        pending[-1] = item
    else:
        pending.append(item)
    return pending


class EventPublisher:
    def __init__(self, store: EventLog, interval: float = INTERVAL) -> None:
        self.store = store
        self.outbox: Outbox[Item, list[Item]] = Outbox(self._append, _fold, interval, logger, "stream")
        self._preview_at: dict[str, float] = {}  # the runs logged here, and when each last logged a preview
        self._shown: dict[str, Progress] = {}  # each run's map as its last progress entry told it

    def notify(self, event: RunEvent) -> None:
        task = event.task
        if isinstance(event, RunQueued):
            self._preview_at[task.task_id] = 0.0
        elif task.task_id not in self._preview_at:
            return
        if isinstance(event, RunQueued | RunStarted):
            self.outbox.put(task.task_id, ("status", {"status": task.status.value}))
        elif isinstance(event, RunProgressed):
            self.outbox.put(task.task_id, task.progress)
        elif isinstance(event, RunPreview):
            self._preview(task.task_id, event)
        elif isinstance(event, RunOutput):
            self.outbox.put(task.task_id, ("output", {"node": event.node, "output": event.output}))
        elif isinstance(event, RunModelsProgressed):
            models = [fetch.model_dump(mode="json") for fetch in task.models]
            self.outbox.put(task.task_id, ("models", {"models": models, "done": event.done}))

    def _preview(self, task_id: str, preview: RunPreview) -> None:
        now = time.monotonic()
        if len(preview.data) > PREVIEW_MAX_BYTES or now - self._preview_at[task_id] < 1 / PREVIEWS_PER_SECOND:
            return
        self._preview_at[task_id] = now
        image = f"data:{preview.mime};base64,{base64.b64encode(preview.data).decode()}"
        self.outbox.put(task_id, ("preview", {"node": preview.node, "image": image}))

    async def settle(self, ended: RunEnded) -> None:
        task = ended.task
        self._preview_at.pop(task.task_id, None)
        written = self.outbox.close(task.task_id, task.progress, ("end", task_view(task)))
        if written is not None:
            with contextlib.suppress(TimeoutError, AgentError):  # a lost write is logged where it failed
                await asyncio.wait_for(asyncio.shield(written), END_PATIENCE)

    async def _append(self, task_id: str, batch: list[Item]) -> None:
        entries = [entry for item in batch for entry in self._told(task_id, item)]
        if entries:
            await self.store.append_events(task_id, entries)

    def _told(self, task_id: str, item: Item) -> list[Entry]:
        """An item as log entries: a map as the nodes that changed since the last one told (if any)."""
        if isinstance(item, tuple):
            if item[0] == "end":
                self._shown.pop(task_id, None)
            return [item]
        shown, self._shown[task_id] = self._shown.get(task_id, {}), item
        changed = {node: state.model_dump(mode="json") for node, state in item.items() if shown.get(node) != state}
        return [("progress", {"nodes": changed})] if changed else []
