"""What happens to a run, as typed events, and who hears of them.

A run publishes; subscribers react: the store's writer, and those later issues add (webhooks, event streams,
metrics). `notify` must not block (a subscriber schedules its own slow work); `settle` is awaited once the run
has ended and before its outcome is handed back, for what must be done by then (the store's final write: a
poller must find the end before the caller does).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from agent.errors import AgentError
from agent.logs import log_event
from agent.tasks.model import Results, Task

logger = logging.getLogger("agent.run")


class RunEvent(BaseModel):
    """`task` is the run's live record: read it in `notify`, copy what must outlive the call."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    task: Task


class RunQueued(RunEvent):
    """Claimed under its task id; waiting for a place in this instance or in ComfyUI's queue."""


class RunInputsFetched(RunEvent):
    """Its inputs' URLs and bucket objects were downloaded: `bytes` of them (the seconds are `task.timings`)."""

    bytes: int


class RunSubmitted(RunEvent):
    """ComfyUI took the prompt (`task.prompt_id`)."""


class RunStarted(RunEvent):
    """ComfyUI began the prompt."""


class RunProgressed(RunEvent):
    """The map changed: a node began, advanced, finished or came from the cache."""


class RunPreview(RunEvent):
    """An image a node showed while it ran."""

    node: str | None
    mime: str
    data: bytes


class RunOutput(RunEvent):
    """A node reported its output (`output`, as ComfyUI sent it)."""

    node: str
    output: dict[str, Any]


class RunEnded(RunEvent):
    """The end: `task.status` and `task.error` say how; `results` are the images' base64 when it succeeded."""

    results: Results | None = None


class Subscriber(Protocol):
    def notify(self, event: RunEvent) -> None: ...

    async def settle(self, ended: RunEnded) -> None:
        """Raise an AgentError when what the end needed could not be done; the caller is told of it."""


class RunEvents:
    """The subscribers of every run, fixed at wiring; one that fails is logged, never allowed to stop a run.
    Those `ahead` of the recorder (the store's writer) settle before it, so what they leave on the task (a
    webhook's delivery record) is in its final write; the rest settle alongside it."""

    def __init__(self, subscribers: list[Subscriber], recorder: Subscriber | None = None,
                 ahead: tuple[Subscriber, ...] = ()) -> None:
        self.subscribers = [*ahead, *subscribers, *([recorder] if recorder is not None else [])]
        self.ahead = ahead

    def publish(self, event: RunEvent) -> None:
        for subscriber in self.subscribers:
            try:
                subscriber.notify(event)
            except Exception as exc:  # a subscriber's fault is its own, not the run's
                log_event(logger, "subscriber.failed", event.task.task_id, level=logging.ERROR,
                          subscriber=type(subscriber).__name__, kind=type(event).__name__, error=repr(exc))

    async def settle(self, ended: RunEnded) -> str | None:
        """Publish the end and wait for every subscriber's part of it; returns what went wrong, if anything."""
        self.publish(ended)
        outcomes = await asyncio.gather(*(subscriber.settle(ended) for subscriber in self.ahead),
                                        return_exceptions=True)
        rest = [subscriber for subscriber in self.subscribers if subscriber not in self.ahead]
        outcomes += await asyncio.gather(*(subscriber.settle(ended) for subscriber in rest), return_exceptions=True)
        problems = [str(outcome) for outcome in outcomes if isinstance(outcome, AgentError)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, AgentError):
                log_event(logger, "subscriber.failed", ended.task.task_id, level=logging.ERROR, error=repr(outcome))
        return "; ".join(problems) or None
