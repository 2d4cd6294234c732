"""One prompt in ComfyUI: submitted under the agent's event connection, followed to its end, stopped on request.

The prompt is watched on the connection before `POST /prompt` (ComfyUI never replays a message); it ends with its
terminal message, or with `executing` node null. After a gap in the connection the end is read from `/history`
(finished) and `/queue` (still waiting); a prompt in neither was taken out of ComfyUI's queue. A stop (a cancel,
a deadline) takes the prompt out of ComfyUI, pending first, then running, and then waits, briefly, until ComfyUI
has let go of it, so that whoever is told about the stop knows whether the next prompt still queues behind it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable, Submitted
from agent.comfy.connection import EventConnection, Gap, Stop, Watch
from agent.comfy.messages import (
    ExecutionFailed,
    ExecutionInterrupted,
    ExecutionSucceeded,
    Message,
    NodeExecuted,
    PromptDone,
    event_from,
)
from agent.logs import log_event

logger = logging.getLogger("agent.comfy")

UNREACHABLE_GRACE = 5.0  # ComfyUI's websocket refused this long (its process alive) means it stopped answering
RELEASE_WAIT = 5.0  # how long a stop waits for ComfyUI to let go of the prompt
RELEASE_POLL = 0.1

Outcome = Literal["success", "error", "interrupted", "deleted", "canceled", "timeout"]
StopReason = Literal["canceled", "timeout"]  # as in connection.Stop
T = TypeVar("T")


class Liveness(Protocol):
    """The ComfyUI process a prompt was sent to; `exited` turns true when that process is gone."""

    @property
    def exited(self) -> bool: ...


class ComfyGone(Exception):
    """ComfyUI exited, or stopped answering, while the prompt was in it."""


@dataclass(frozen=True)
class Ending:
    """How the prompt ended; after a stop, `released` says whether ComfyUI had let go of it."""

    outcome: Outcome
    details: dict[str, Any] = field(default_factory=dict)
    released: bool = True


def _ending_of(event: object) -> Ending | None:
    if isinstance(event, ExecutionSucceeded):
        return Ending("success")
    if isinstance(event, ExecutionFailed):
        return Ending("error", event.details)
    if isinstance(event, ExecutionInterrupted):
        return Ending("interrupted", event.details)
    return None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def history_events(prompt_id: str, entry: dict[str, Any]) -> tuple[list[Message], Ending | None]:
    """Rebuild a finished prompt's events from its /history entry (what a gap in the connection missed).

    The terminal event comes last, after the outputs; a success names the output nodes that ran, so the
    nodes whose own messages were lost can still be marked finished.
    """
    status = _as_dict(entry.get("status"))
    events: list[Message] = []
    terminal: Message | None = None
    for message in status.get("messages") or ():
        if isinstance(message, list) and len(message) == 2 and isinstance(message[1], dict):
            event = event_from(str(message[0]), {**message[1], "prompt_id": prompt_id})
            if _ending_of(event) is not None:
                terminal = event
            elif event is not None:
                events.append(event)
    meta = _as_dict(entry.get("meta"))
    for node, output in _as_dict(entry.get("outputs")).items():
        display = _as_dict(meta.get(node)).get("display_node")
        events.append(NodeExecuted(prompt_id, str(node), None if display is None else str(display), output))
    if terminal is None and status.get("status_str") == "success":
        terminal = ExecutionSucceeded(prompt_id)
    if isinstance(terminal, ExecutionSucceeded):
        prompt = entry.get("prompt")
        outputs = prompt[4] if isinstance(prompt, list) and len(prompt) > 4 else ()
        terminal = ExecutionSucceeded(prompt_id, tuple(str(node) for node in outputs))
    if terminal is None:
        return events, None
    events.append(terminal)
    return events, _ending_of(terminal)


class Prompt:
    """`sink` receives every event of this prompt, possibly more than once (a gap's catch-up repeats some)."""

    def __init__(self, client: ComfyClient, connection: EventConnection, process: Liveness,
                 sink: Callable[[Message], None], task_id: str | None = None) -> None:
        self.client = client
        self.connection = connection
        self.process = process
        self.sink = sink
        self.task_id = task_id
        self.prompt_id = str(uuid.uuid4())
        self._watch: Watch | None = None
        self._missed_messages = False

    async def submit(self, graph: dict[str, Any], pnginfo: dict[str, Any] | None = None) -> Submitted:
        """Once the connection is open: watched first, then sent. ComfyUI's refusals are raised as they come
        (PromptRejected, ComfyHTTPError, ComfyUnreachable; ConnectionUnavailable when the socket will not open)."""
        await self.connection.ready()
        watch = self.connection.watch(self.prompt_id)
        try:
            submitted = await self.client.submit(graph, self.connection.client_id, self.prompt_id, pnginfo)
        except BaseException:
            self.connection.forget(watch)
            raise
        if submitted.prompt_id != self.prompt_id:
            self.prompt_id = submitted.prompt_id
            self.connection.rekey(watch, submitted.prompt_id)
        self._watch = watch
        return submitted

    def stop(self, reason: StopReason) -> None:
        """Ask the follower to take the prompt out of ComfyUI (a cancel, a deadline); safe from any callback."""
        if self._watch is not None:
            self._watch.put(Stop(reason))

    async def follow(self) -> Ending:
        """The prompt's events until its end; raises ComfyGone when ComfyUI goes away meanwhile."""
        assert self._watch is not None, "submit() first"
        while True:
            item = await self._watch.next()
            if isinstance(item, Stop):
                return await self._stopped(item.reason)
            ending = await self._catch_up() if isinstance(item, Gap) else await self._handle(item)
            if ending is not None:
                return ending

    def close(self) -> None:
        if self._watch is not None:
            self.connection.forget(self._watch)

    async def _handle(self, event: Message) -> Ending | None:
        """Pass on this prompt's events; after a gap the end is read from /history, which has what the gap
        swallowed (outputs of nodes that finished meanwhile) and is written before `executing` null."""
        self.sink(event)
        if isinstance(event, PromptDone):
            return await self._ending_from_history() or Ending("success")
        return None if self._missed_messages else _ending_of(event)

    async def _ending_from_history(self) -> Ending | None:
        entry = await self._answered(self.client.history(self.prompt_id))
        if entry is None:
            return None
        events, ending = history_events(self.prompt_id, entry)
        for event in events:
            self.sink(event)
        return ending or Ending("success")

    async def _catch_up(self) -> Ending | None:
        """What happened while the connection was away: finished (history), still waiting (queue), or gone.

        History is read again after the queue because the prompt may finish between the two reads.
        """
        self._missed_messages = True
        await self._reconnected()
        ending = await self._ending_from_history()
        if ending is None and (await self._answered(self.client.queue())).holds(self.prompt_id):
            return None
        ending = ending or await self._ending_from_history()
        if ending is not None:
            return ending
        if self.process.exited:
            raise ComfyGone("ComfyUI exited during the run")
        return Ending("deleted")

    async def _reconnected(self) -> None:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + UNREACHABLE_GRACE
        while not self.connection.open:
            if self.process.exited:
                raise ComfyGone("ComfyUI exited during the run")
            if loop.time() >= give_up_at:
                raise ComfyGone("ComfyUI stopped answering during the run")
            await self.connection.wait_open(0.05)

    async def _answered(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            detail = "exited" if self.process.exited else f"stopped answering ({exc})"
            raise ComfyGone(f"ComfyUI {detail} during the run") from exc

    async def _stopped(self, reason: StopReason) -> Ending:
        """Pending first, then running, so the prompt cannot slip between the two; then until ComfyUI lets go."""
        try:
            await self.client.delete_pending(self.prompt_id)
            await self.client.interrupt(self.prompt_id)
        except ComfyUnreachable as exc:
            log_event(logger, "comfy.stop_failed", self.task_id, prompt_id=self.prompt_id, error=exc)
        return Ending(reason, released=await self._released())

    async def _released(self) -> bool:
        """ComfyUI has let go when it says the prompt ended, or its queue no longer holds it."""
        assert self._watch is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RELEASE_WAIT
        while loop.time() < deadline:
            try:
                async with asyncio.timeout(RELEASE_POLL):
                    item = await self._watch.next()
            except TimeoutError:
                try:
                    if not (await self.client.queue()).holds(self.prompt_id):
                        return True
                except (ComfyUnreachable, ComfyHTTPError):
                    if self.process.exited:
                        return True
                continue
            if not isinstance(item, Gap | Stop):
                self.sink(item)
                if isinstance(item, PromptDone) or _ending_of(item) is not None:
                    return True
        return False
