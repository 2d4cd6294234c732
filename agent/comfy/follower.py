"""Submit one prompt and follow it to its end, under every timing real ComfyUI produces.

Why one clientId (and one socket) per run rather than one shared socket with dispatch:
- isolation: ComfyUI sends a prompt's messages only to its client's socket, so a run never sees, parses or
  waits on another run's traffic, and a dropped or stalled socket hurts one run, not all of them;
- recovery is local: after a drop, this run alone reconnects with its own clientId (the old socket closed
  first, so ComfyUI's orphaned-socket trap cannot hit) and catches up from `/history` and `/queue`;
- the cost is one extra socket per concurrent run and ComfyUI's `status` broadcast reaching each of them,
  which is small next to a diffusion step.

The socket is registered before `POST /prompt` (ComfyUI never replays a message), messages are matched by
`prompt_id`, and the end is the terminal message of this prompt, or `executing` with node null.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable, PromptRejected, Submitted
from agent.comfy.events import (
    Event,
    ExecutionFailed,
    ExecutionInterrupted,
    ExecutionSucceeded,
    NodeExecuted,
    PromptDone,
    event_from,
)
from agent.comfy.socket import EventSocket, SocketClosed
from agent.errors import AgentError, Canceled, ComfyUICrashed, ComfyUIUnavailable, PromptValidationError, RunTimeout
from agent.logs import log_event

logger = logging.getLogger("agent.comfy")

TICK = 0.5  # how often a waiting run looks at the clock, the process and the socket's silence
UNREACHABLE_GRACE = 5.0  # ComfyUI refusing every connection this long means it is gone

Outcome = Literal["success", "error", "interrupted"]
T = TypeVar("T")


class Liveness(Protocol):
    """The ComfyUI process a prompt was sent to; `exited` turns true when that process is gone."""

    @property
    def exited(self) -> bool: ...


@dataclass(frozen=True)
class Ending:
    outcome: Outcome
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunControl:
    """What the caller can do to a run in flight."""

    deadline: float
    cancel: asyncio.Event = field(default_factory=asyncio.Event)


def _ending_of(event: Event | None) -> Ending | None:
    if isinstance(event, ExecutionSucceeded):
        return Ending("success")
    if isinstance(event, ExecutionFailed):
        return Ending("error", event.details)
    if isinstance(event, ExecutionInterrupted):
        return Ending("interrupted", event.details)
    return None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def history_events(prompt_id: str, entry: dict[str, Any]) -> tuple[list[Event], Ending | None]:
    """Rebuild a finished prompt's events from its /history entry (what a dropped socket missed).

    The terminal event comes last, after the outputs; a success names the output nodes that ran, so the
    nodes whose own messages were lost can still be marked finished.
    """
    status = _as_dict(entry.get("status"))
    events: list[Event] = []
    terminal: Event | None = None
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


class PromptRun:
    """One prompt's life in ComfyUI; `sink` receives every event of this prompt, possibly more than once."""

    def __init__(self, client: ComfyClient, process: Liveness, sink: Callable[[Event], None],
                 stall_timeout: float, task_id: str | None = None) -> None:
        self.client = client
        self.process = process
        self.sink = sink
        self.stall_timeout = stall_timeout
        self.task_id = task_id
        self.client_id = f"agent-{uuid.uuid4().hex}"
        self.prompt_id = str(uuid.uuid4())
        self._socket: EventSocket | None = None
        self._missed_messages = False

    async def connect(self) -> None:
        """Open and register this run's socket; it must exist before the prompt does."""
        try:
            self._socket = await self.client.open_socket(self.client_id)
        except SocketClosed as exc:
            raise ComfyUIUnavailable(f"ComfyUI's websocket is not reachable: {exc}") from exc

    async def execute(self, prompt: dict[str, Any], control: RunControl,
                      on_submitted: Callable[[str, dict[str, Any]], None] | None = None) -> Ending:
        """Submit on the connected socket and follow the prompt's events until its end."""
        assert self._socket is not None, "connect() first"
        submitted = await self._submit(prompt)
        self.prompt_id = submitted.prompt_id
        if on_submitted:
            on_submitted(self.prompt_id, submitted.node_errors)
        return await self._follow(self._socket, control)

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()

    async def _submit(self, prompt: dict[str, Any]) -> Submitted:
        try:
            return await self.client.submit(prompt, self.client_id, self.prompt_id)
        except PromptRejected as exc:
            raise PromptValidationError(exc.body.get("error"), node_errors=exc.body.get("node_errors", {})) from exc
        except ComfyHTTPError as exc:
            raise PromptValidationError({"type": "comfyui_error", "message": exc.text[:2000]}, node_errors={}) from exc
        except ComfyUnreachable as exc:
            if self.process.exited:
                raise self._crashed() from exc
            raise ComfyUIUnavailable(f"ComfyUI did not take the prompt: {exc}") from exc

    async def _follow(self, socket: EventSocket, control: RunControl) -> Ending:
        loop = asyncio.get_running_loop()
        while True:
            stopping = self._verdict(control, loop.time())
            if stopping is not None:
                if not isinstance(stopping, ComfyUICrashed):
                    await self.stop()
                raise stopping
            try:
                event = await socket.next_event(TICK)
            except TimeoutError:
                if loop.time() - socket.last_frame_at < self.stall_timeout:
                    continue
                socket, ending = await self._recover(socket, "stalled")
            except SocketClosed:
                socket, ending = await self._recover(socket, "dropped")
            else:
                ending = await self._handle(event)
            if ending is not None:
                return ending

    def _verdict(self, control: RunControl, now: float) -> AgentError | None:
        """Why the run must end now, if it must: checked before every frame, so it costs no await."""
        if self.process.exited:
            return self._crashed()
        if control.cancel.is_set():
            return Canceled("the run was canceled", prompt_id=self.prompt_id)
        if now >= control.deadline:
            return RunTimeout("the run exceeded its timeout", prompt_id=self.prompt_id)
        return None

    async def _handle(self, event: Event | None) -> Ending | None:
        """Pass on this prompt's events; after a gap the end is read from /history, which has what the gap
        swallowed (outputs of nodes that finished meanwhile) and is written before `executing` null."""
        if event is None or event.prompt_id not in (self.prompt_id, None):
            return None
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

    async def _recover(self, old: EventSocket, reason: str) -> tuple[EventSocket, Ending | None]:
        """Replace the socket (same clientId, old one fully closed first), then catch up over HTTP."""
        await old.close()
        self._missed_messages = True
        log_event(logger, "ws.reconnect", self.task_id, level=logging.WARNING, reason=reason,
                  prompt_id=self.prompt_id)
        self._socket = await self._reopen()
        return self._socket, await self._catch_up()

    async def _reopen(self) -> EventSocket:
        loop = asyncio.get_running_loop()
        give_up_at = loop.time() + UNREACHABLE_GRACE
        delay = 0.05
        while True:
            if self.process.exited:
                raise self._crashed()
            try:
                return await self.client.open_socket(self.client_id)
            except SocketClosed:
                if loop.time() >= give_up_at:
                    raise ComfyUICrashed("ComfyUI stopped answering during the run",
                                         prompt_id=self.prompt_id) from None
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.5)

    async def _catch_up(self) -> Ending | None:
        """What happened while the socket was away: finished (history), still waiting (queue), or lost.

        History is read again after the queue because the prompt may finish between the two reads.
        """
        ending = await self._ending_from_history()
        if ending is None and (await self._answered(self.client.queue())).holds(self.prompt_id):
            return None
        ending = ending or await self._ending_from_history()
        if ending is not None:
            return ending
        if self.process.exited:
            raise self._crashed()
        raise Canceled("the prompt left ComfyUI's queue without running (deleted from the queue)",
                       prompt_id=self.prompt_id)

    async def _answered(self, call: Awaitable[T]) -> T:
        try:
            return await call
        except (ComfyUnreachable, ComfyHTTPError) as exc:
            if self.process.exited:
                raise self._crashed() from exc
            raise ComfyUICrashed(f"ComfyUI stopped answering during the run: {exc}",
                                 prompt_id=self.prompt_id) from exc

    def _crashed(self) -> ComfyUICrashed:
        return ComfyUICrashed("ComfyUI exited during the run", prompt_id=self.prompt_id)

    async def stop(self) -> None:
        """Take the prompt out of ComfyUI: pending first, then running, so it cannot slip between the two."""
        try:
            await self.client.delete_pending(self.prompt_id)
            await self.client.interrupt(self.prompt_id)
        except ComfyUnreachable as exc:
            log_event(logger, "comfy.stop_failed", self.task_id, prompt_id=self.prompt_id, error=exc)
