"""What happens to a run, as typed events, and who hears of them.

A run publishes; subscribers react: the store's writer, the event log, webhooks, metrics. Every event carries
a snapshot of the run's record as it was then (`Run.snapshot`): a shallow copy whose parts (the progress map,
the timings) the run replaces rather than changes, so a subscriber may keep it. Setting its fields changes that
copy only; its parts are shared with the record and with the other subscribers, which only read them.

`notify` must not block (a subscriber schedules its own slow work, through agent/runs/outbox.py); `settle` is
awaited once the run has ended and before its outcome is handed back, for what must be done by then (the store's
final write: a poller must find the end before the caller does). What a subscriber adds to the record (a
webhook's delivery record) comes back from its `report`, asked before the end is published: the end's record is
whole when the store writes it, and nobody changes a record in place. A herald (the event log) tells readers
elsewhere of the end: it settles after the other subscribers, so whoever hears of the end from it finds the
store's record ended too (a stream's client reads the job back at once, on any instance).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Iterable
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from agent.errors import AgentError
from agent.logs import log_event
from agent.tasks.model import Results, Task

logger = logging.getLogger("agent.run")


class RunEvent(BaseModel):
    """`task`: the run's record when this happened, a snapshot nobody changes (subscribers only read it)."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    task: Task


class RunQueued(RunEvent):
    """Claimed under its task id; waiting for a place in this instance or in ComfyUI's queue."""


class RunInputsFetched(RunEvent):
    """Its inputs' URLs and bucket objects were downloaded: `bytes` of them (the seconds are `task.timings`)."""

    bytes: int


class RunModelsProgressed(RunEvent):
    """The models the run names by URL moved on (`task.models`): bytes came, or all of them are in place
    (`done`, with the seconds in `task.timings.models`)."""

    done: bool = False


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


class Listener(Protocol):
    """What subscribers and reporters share: they hear of every event of every run."""

    def notify(self, event: RunEvent) -> None: ...


class Subscriber(Listener, Protocol):
    async def settle(self, ended: RunEnded) -> None:
        """Raise an AgentError when what the end needed could not be done; the caller is told of it."""


class Reporter(Listener, Protocol):
    """A subscriber with a part of the run's final record (a webhook's delivery): it reports that part before
    the end is published, so the store's final write carries it."""

    async def report(self, ending: Task) -> Task:
        """`ending` with this subscriber's part on it."""


class RunEvents:
    """The subscribers of every run, fixed at wiring; one that fails is logged, never allowed to stop a run."""

    def __init__(self, subscribers: list[Subscriber], reporters: tuple[Reporter, ...] = (),
                 heralds: tuple[Subscriber, ...] = ()) -> None:
        self.subscribers = subscribers
        self.reporters = reporters
        self.heralds = heralds

    def publish(self, event: RunEvent) -> None:
        listeners: Iterable[Listener] = itertools.chain(self.reporters, self.subscribers, self.heralds)
        for listener in listeners:
            try:
                listener.notify(event)
            except Exception as exc:  # a subscriber's fault is its own, not the run's
                log_event(logger, "subscriber.failed", event.task.task_id, level=logging.ERROR,
                          subscriber=type(listener).__name__, kind=type(event).__name__, error=repr(exc))

    async def settle(self, ending: Task, results: Results | None) -> tuple[Task, str | None]:
        """The end: the reporters' parts go on the run's record, which is published and awaited in every
        subscriber's part of it, the heralds' last. Returns that final record, and what went wrong, if anything."""
        final = await self._reported(ending)
        ended = RunEnded(task=final.model_copy(), results=results)  # the run's own record is not handed out
        self.publish(ended)
        outcomes = await self._settled(ended, self.subscribers) + await self._settled(ended, self.heralds)
        problems = [str(outcome) for outcome in outcomes if isinstance(outcome, AgentError)]
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, AgentError):
                log_event(logger, "subscriber.failed", final.task_id, level=logging.ERROR, error=repr(outcome))
        return final, "; ".join(problems) or None

    @staticmethod
    async def _settled(ended: RunEnded, subscribers: Iterable[Subscriber]) -> list[BaseException | None]:
        return await asyncio.gather(*(subscriber.settle(ended) for subscriber in subscribers), return_exceptions=True)

    async def _reported(self, task: Task) -> Task:
        for reporter in self.reporters:
            try:
                task = await reporter.report(task)
            except Exception as exc:  # the record goes on without that part
                log_event(logger, "subscriber.failed", task.task_id, level=logging.ERROR,
                          subscriber=type(reporter).__name__, error=repr(exc))
        return task
