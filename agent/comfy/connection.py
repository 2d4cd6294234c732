"""The agent's one websocket to ComfyUI, shared by every run: frames are dispatched to the prompt they belong to.

Why one connection and not one per run: ComfyUI broadcasts its queue `status` to every socket, so with a socket
per run its work grows with the square of the runs in flight, and sockets must not take places in the HTTP pool
that prompts are submitted through. Every prompt is submitted under this connection's clientId, so ComfyUI sends
all of their messages here; they are matched by `prompt_id`, previews by their metadata (the feature flag asks
ComfyUI for it) or, without it, by the node that is executing (ComfyUI runs one prompt at a time).

A dropped connection, or a stalled one, is closed completely and opened again under the same clientId (the old
socket first, or ComfyUI orphans the new one); every prompt followed then gets a `Gap` and catches up over HTTP.
Silence alone is no stall: ComfyUI sends nothing while one node works (a long sampler step, a model load), so a
connection silent for `stall_timeout` while prompts are followed is held against ComfyUI's queue: stalled only when
the queue contradicts what the socket last said (the prompt it said was executing is gone, or one of ours runs
that it never announced), or ComfyUI does not answer. Frames of a prompt nobody watches yet are kept a short while
(a prompt whose id ComfyUI changed on submit is claimed under its new id).

The socket is aiohttp's websocket client, on a session of its own (never a place in the HTTP pool): the design
card names the `websockets` package, but bench/event_socket.py measured it reading ComfyUI's frames with about a
third more CPU per frame than aiohttp's C-accelerated reader, and every frame of every run passes here. No ping
heartbeat: a peer can answer pings and still send nothing more, which the queue check catches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp

from agent.comfy.client import ComfyHTTPError, ComfyUnreachable, QueueState
from agent.comfy.messages import (
    ExecutionFailed,
    ExecutionInterrupted,
    ExecutionSucceeded,
    Message,
    NodeExecuting,
    Preview,
    PromptDone,
    parse_frame,
    parse_preview,
)
from agent.logs import log_event

logger = logging.getLogger("agent.comfy")

OPEN_TIMEOUT = 10.0
CLOSE_TIMEOUT = 2.0  # a socket that no longer answers is cut after this, so the same clientId can come back
MAX_FRAME_BYTES = 512 * 1024 * 1024  # SaveImageWebsocket sends whole images; a refused frame would drop every run
WATCHDOG_SECONDS = 1.0
UNCLAIMED_PROMPTS = 64  # prompts whose frames are kept for a watcher that comes late
UNCLAIMED_FRAMES = 256  # of each of them
REOPEN_DELAYS = (0.05, 0.1, 0.2, 0.5)
FEATURE_FLAGS = json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}})


class ConnectionUnavailable(Exception):
    """The connection is not open and could not be opened."""


@dataclass(frozen=True, slots=True)
class Gap:
    """The connection was replaced: what ComfyUI sent meanwhile is lost; catch up over HTTP."""

    reason: str


@dataclass(frozen=True, slots=True)
class Stop:
    """Said to a prompt's follower from the agent's side: take the prompt out of ComfyUI (a cancel, a deadline)."""

    reason: Literal["canceled", "timeout"]


Item = Message | Gap | Stop


class Watch:
    """One prompt's share of the connection: its events in order, gaps, and a stop when one is asked for."""

    def __init__(self, prompt_id: str) -> None:
        self.prompt_id = prompt_id
        self.items: asyncio.Queue[Item] = asyncio.Queue()

    def put(self, item: Item) -> None:
        self.items.put_nowait(item)

    async def next(self) -> Item:
        return await self.items.get()


class EventConnection:
    def __init__(self, base_url: str, stall_timeout: float, queue: Callable[[], Awaitable[QueueState]],
                 client_id: str | None = None) -> None:
        self.url = f"{base_url.rstrip('/').replace('http', 'ws', 1)}/ws?clientId="
        self.client_id = client_id or f"agent-{uuid.uuid4().hex}"
        self.stall_timeout = stall_timeout
        self._queue = queue
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._open = asyncio.Event()
        self._keeper: asyncio.Task[None] | None = None
        self._watches: dict[str, Watch] = {}
        self._unclaimed: OrderedDict[str, list[Message]] = OrderedDict()
        self._executing: tuple[str, str] | None = None
        self._last_frame_at = 0.0
        self._stalled = False
        self.reconnects = 0

    @property
    def open(self) -> bool:
        return self._open.is_set()

    async def ready(self, timeout: float = OPEN_TIMEOUT) -> None:
        """Open and greeted by ComfyUI (it registers the clientId before it greets): only then may a prompt be
        submitted, since ComfyUI never replays a message."""
        if self._keeper is None:
            self._keeper = asyncio.ensure_future(self._keep_open())
        if not await self.wait_open(timeout):
            raise ConnectionUnavailable(f"ComfyUI's websocket did not open within {timeout:g} s")

    async def wait_open(self, timeout: float) -> bool:
        if not self._open.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._open.wait()
        return self._open.is_set()

    def watch(self, prompt_id: str) -> Watch:
        """Follow a prompt from now on (before it is submitted, so nothing of it is missed)."""
        watch = Watch(prompt_id)
        self._claim(watch)
        return watch

    def rekey(self, watch: Watch, prompt_id: str) -> None:
        """ComfyUI named the prompt otherwise than asked: follow it under the name it uses."""
        self.forget(watch)
        watch.prompt_id = prompt_id
        self._claim(watch)

    def forget(self, watch: Watch) -> None:
        if self._watches.get(watch.prompt_id) is watch:
            del self._watches[watch.prompt_id]

    async def close(self) -> None:
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._socket is not None:
            await self._socket.close()
        if self._session is not None:
            await self._session.close()

    def _claim(self, watch: Watch) -> None:
        self._watches[watch.prompt_id] = watch
        for event in self._unclaimed.pop(watch.prompt_id, ()):
            watch.put(event)

    async def _keep_open(self) -> None:
        """The one task that opens the socket, so two sockets never share the clientId."""
        attempt = 0
        while True:
            try:
                socket = await self._connect()
            except (OSError, TimeoutError, aiohttp.ClientError):
                await asyncio.sleep(REOPEN_DELAYS[min(attempt, len(REOPEN_DELAYS) - 1)])
                attempt += 1
                continue
            if attempt or self.reconnects:
                log_event(logger, "ws.reopened", prompts=len(self._watches), attempts=attempt + 1)
            attempt = 0
            reason = await self._read(socket)
            self.reconnects += 1
            log_event(logger, "ws.reconnect", level=logging.WARNING, reason=reason, prompts=len(self._watches))
            for watch in list(self._watches.values()):
                watch.put(Gap(reason))

    async def _connect(self) -> aiohttp.ClientWebSocketResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(trust_env=False, cookie_jar=aiohttp.DummyCookieJar())
        async with asyncio.timeout(OPEN_TIMEOUT):
            socket = await self._session.ws_connect(
                self.url + self.client_id, max_msg_size=MAX_FRAME_BYTES, compress=0,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=CLOSE_TIMEOUT))
            try:
                await socket.send_str(FEATURE_FLAGS)
                greeting = await socket.receive()  # ComfyUI's `status`: the clientId is registered
            except BaseException:
                await socket.close()
                raise
        if greeting.type != aiohttp.WSMsgType.TEXT:
            await socket.close()
            raise aiohttp.ClientError(f"ComfyUI's websocket ended before its greeting ({greeting.type.name})")
        return socket

    async def _read(self, socket: aiohttp.ClientWebSocketResponse) -> str:
        """Dispatch frames until the socket ends; returns why it ended. Closed completely before returning."""
        loop = asyncio.get_running_loop()
        self._socket, self._stalled, self._last_frame_at = socket, False, loop.time()
        self._open.set()
        watchdog = asyncio.ensure_future(self._watch_silence(socket))
        try:
            async for message in socket:
                if message.type not in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    break  # ERROR; CLOSE and its kind end the iteration by themselves
                self._last_frame_at = loop.time()
                self._dispatch(message.data)
        finally:
            self._open.clear()
            self._socket = None
            watchdog.cancel()
            await socket.close()
        return "stalled" if self._stalled else "dropped"

    async def _watch_silence(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        """A connection silent for `stall_timeout` while prompts are followed may be dead without knowing it; the
        queue tells. Explained silence is checked again after as long once more."""
        loop = asyncio.get_running_loop()
        explained_at = 0.0
        while True:
            await asyncio.sleep(WATCHDOG_SECONDS)
            if not self._watches or loop.time() - max(self._last_frame_at, explained_at) < self.stall_timeout:
                continue
            if await self._silence_explained():
                explained_at = loop.time()
                continue
            self._stalled = True
            await socket.close()
            return

    async def _silence_explained(self) -> bool:
        """ComfyUI's queue agrees with what the socket last said: the prompt it said was executing still runs, or,
        when it said none, none of ours does (they wait behind another client's, or are about to start)."""
        try:
            state = await self._queue()
        except (ComfyUnreachable, ComfyHTTPError):
            return False
        if self._executing is not None:
            return self._executing[0] in state.running
        return not state.running & self._watches.keys()

    def _dispatch(self, frame: str | bytes) -> None:
        event: Message | None
        if isinstance(frame, bytes):
            event = parse_preview(frame, self._executing)
        else:
            event = parse_frame(frame)
            if isinstance(event, NodeExecuting) and event.prompt_id is not None:
                self._executing = (event.prompt_id, event.display_node or event.node)
            elif isinstance(event, PromptDone | ExecutionSucceeded | ExecutionFailed | ExecutionInterrupted):
                self._executing = None
        if event is None or event.prompt_id is None:
            return
        watch = self._watches.get(event.prompt_id)
        if watch is not None:
            watch.put(event)
        elif not isinstance(event, Preview):
            self._keep_unclaimed(event)

    def _keep_unclaimed(self, event: Message) -> None:
        assert event.prompt_id is not None
        kept = self._unclaimed.setdefault(event.prompt_id, [])
        if len(kept) < UNCLAIMED_FRAMES:
            kept.append(event)
        self._unclaimed.move_to_end(event.prompt_id)
        while len(self._unclaimed) > UNCLAIMED_PROMPTS:
            self._unclaimed.popitem(last=False)
