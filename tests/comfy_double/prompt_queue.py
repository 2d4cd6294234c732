"""ComfyUI's PromptQueue: a heap of pending prompts, the running one, and the history."""

from __future__ import annotations

import asyncio
import copy
import heapq
from collections.abc import Callable
from typing import Any

MAXIMUM_HISTORY_SIZE = 10000
SENSITIVE_EXTRA_DATA_KEYS = ("auth_token_comfy_org", "api_key_comfy_org")  # never kept in /history

# (number, prompt_id, prompt, extra_data, outputs_to_execute)
QueueItem = tuple[float, str, dict[str, Any], dict[str, Any], list[str]]


class PromptQueue:
    """Same ordering and same ``status`` notifications as the real queue (a heap ordered by number)."""

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self.pending: list[QueueItem] = []  # a heap; /queue lists it in heap order, as ComfyUI does
        self.running: dict[int, QueueItem] = {}
        self.history: dict[str, dict[str, Any]] = {}
        self._flags: dict[str, object] = {}
        self._task_counter = 0
        self._wake = asyncio.Event()

    def put(self, item: QueueItem) -> None:
        """Queue a validated prompt."""
        heapq.heappush(self.pending, item)
        self._on_change()
        self._wake.set()

    async def get(self) -> tuple[QueueItem, int] | None:
        """Take the first prompt; None when woken by a ``/free`` flag with nothing queued."""
        while not self.pending:
            if self._flags:
                return None
            self._wake.clear()
            await self._wake.wait()
        item = heapq.heappop(self.pending)
        task_id = self._task_counter
        self.running[task_id] = copy.deepcopy(item)
        self._task_counter += 1
        self._on_change()
        return item, task_id

    def task_done(self, task_id: int, history_result: dict[str, Any], status: dict[str, Any]) -> None:
        """Move a finished prompt into the history."""
        prompt = self.running.pop(task_id)
        for key in SENSITIVE_EXTRA_DATA_KEYS:
            prompt[3].pop(key, None)
        if len(self.history) > MAXIMUM_HISTORY_SIZE:
            self.history.pop(next(iter(self.history)))
        self.history[prompt[1]] = {"prompt": prompt, "outputs": {}, "status": status, **history_result}
        self._on_change()

    def remaining(self) -> int:
        """Running plus pending prompts (``queue_remaining``)."""
        return len(self.pending) + len(self.running)

    def wipe_queue(self) -> None:
        """Drop every pending prompt (the running one is untouched)."""
        self.pending = []
        self._on_change()

    def delete(self, prompt_id: str) -> None:
        """Drop one pending prompt; deleting the last one notifies twice, like ComfyUI."""
        for index, item in enumerate(self.pending):
            if item[1] == prompt_id:
                if len(self.pending) == 1:
                    self.wipe_queue()
                else:
                    self.pending.pop(index)
                    heapq.heapify(self.pending)
                self._on_change()
                return

    def get_history(self, max_items: int | None = None, offset: int = -1) -> dict[str, Any]:
        """``GET /history``: the last max_items entries, or a window starting at offset."""
        if offset < 0 and max_items is not None:
            offset = len(self.history) - max_items
        out = {}
        for index, (prompt_id, entry) in enumerate(self.history.items()):
            if index >= offset:
                out[prompt_id] = entry
                if max_items is not None and len(out) >= max_items:
                    break
        return out

    def set_flag(self, name: str, value: object) -> None:
        """Remember a ``/free`` request for the worker and wake it."""
        self._flags[name] = value
        self._wake.set()

    def take_flags(self) -> dict[str, object]:
        """Return and clear the pending ``/free`` flags."""
        flags, self._flags = self._flags, {}
        return flags
