"""A local stand-in for Function Compute's front end, asynchronous invocations above all, for the tests only.

What it does as FC does (FC's documentation on asynchronous invocation and async tasks):
- A request with `X-Fc-Invocation-Type: Async` is stored and answered 202 at once, with `X-Fc-Request-Id`; later
  the same HTTP request (method, path, query, headers, body) goes to an instance, which holds it open until done.
- `x-fc-async-task-id` names the task (letters, digits, `_`, `-`, 1 to 128 characters); a reused one is refused
  with 409, a malformed one with 400. A body over 128 KB is refused with 413.
- "Any instance": each delivery goes to the next worker, round robin.
- A 2xx or 4xx answer (but 429) means the function handled the invocation. A 5xx, a 429, a refused or dropped
  connection, a timeout, or no worker at all is a failed attempt, retried `max_retries` times with exponential
  backoff (a longer `Retry-After` is honoured, up to 30 s). An invocation older than `max_age` when its turn
  comes is dropped, never delivered (state `expired`).
- Delivery is at least once: with `duplicate` set each invocation is delivered a second time, as FC may.
- A request without the async header is a synchronous invocation: proxied to a worker, the answer streamed back
  chunk by chunk (Server-Sent Events, large downloads), with `X-Fc-Request-Id` added.

What it does not model, honestly: authentication and signatures, the other `x-fc-*` headers FC adds (function
name, account, trace context), FC's exact error bodies and codes, concurrency limits and throttling on the way
in, instance scaling and cold starts, async destinations (on-success/on-failure targets), task queries or stops
through FC's API, state lost on a restart (everything lives in this process's memory), and the 32 MB limit of
synchronous payloads. Its backoff schedule is its own, not FC's. Never shipped: it lives in tests/.
"""

from __future__ import annotations

import asyncio
import email.utils
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

State = Literal["pending", "delivering", "succeeded", "failed", "expired", "dropped"]
FINAL: frozenset[State] = frozenset({"succeeded", "failed", "expired", "dropped"})

ASYNC_BODY_LIMIT = 128 * 1024  # bytes: FC's limit on an asynchronous invocation's payload
TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")
RETRY_AFTER_CAP = 30.0  # seconds: the longest wait between two attempts
# Headers for one connection only (RFC 9110 §7.6.1): never passed on by a proxy.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
                        "te", "trailer", "trailers", "transfer-encoding", "upgrade"})
# The client writes these itself for the delivered request; taking the caller's would misstate the new body.
REWRITTEN = frozenset({"host", "content-length"})
# aiohttp's client adds these when absent; skipped so the worker sees only what the caller sent.
NO_AUTO_HEADERS = ("Accept", "Accept-Encoding", "User-Agent", "Content-Type")


@dataclass
class Attempt:
    """One delivery: where it went, and the worker's status or, when none came, what went wrong."""

    worker: str
    status: int | None
    error: str | None
    at: float  # on the front's clock
    duplicate: bool = False

    @property
    def handled(self) -> bool:
        """The function took the invocation: FC counts 2xx and 4xx (but 429) as done."""
        return self.status is not None and handled(self.status)


@dataclass
class Invocation:
    """An accepted asynchronous invocation: the caller's request as stored, and what became of it."""

    request_id: str
    task_id: str | None
    method: str
    path_qs: str
    headers: CIMultiDict[str]
    body: bytes
    accepted_at: float
    state: State = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def settle(self, state: State) -> None:
        """Reach a final state and wake whoever waits for it."""
        self.state = state
        self.settled.set()


def handled(status: int) -> bool:
    """FC's reading of a worker's answer: anything but a 5xx or a 429 ends the invocation."""
    return status < 500 and status != 429


def retry_after(value: str | None) -> float:
    """Seconds a `Retry-After` header asks for (delta-seconds or an HTTP date; fractions tolerated), 0 if none."""
    if not value:
        return 0.0
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - time.time())


def passed_on(headers: CIMultiDictProxy[str], drop: frozenset[str]) -> CIMultiDict[str]:
    """The headers a proxy passes on: all but hop-by-hop ones, those the Connection header names, and `drop`."""
    named = {token.strip().lower() for value in headers.getall("Connection", []) for token in value.split(",")}
    gone = HOP_BY_HOP | named | drop
    return CIMultiDict((key, value) for key, value in headers.items() if key.lower() not in gone)


def error_text(error: BaseException) -> str:
    """An attempt's failure in words (a timeout's str() is empty)."""
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def fc_error(status: int, code: str, message: str) -> web.Response:
    """An error answer shaped like FC's (its exact codes are not modelled)."""
    return web.json_response({"ErrorCode": code, "ErrorMessage": message}, status=status)


class FcFront:
    """FC's front end over a list of workers (base URLs), in this process: serve `app()` and send it requests."""

    def __init__(self, workers: list[str], *, delay: float = 0.0, max_retries: int = 3, max_age: float = 86400,
                 retry_base: float = 0.2, delivery_timeout: float = 600,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.workers = list(workers)
        self.delay = delay  # seconds between acceptance and the first delivery: FC delivers "later"
        self.max_retries = max_retries
        self.max_age = max_age
        self.retry_base = retry_base
        self.delivery_timeout = delivery_timeout
        self.clock = clock  # what `max_age` and attempts' times are measured with; tests may move it on
        self.duplicate = False
        self.drop = False
        self.invocations: dict[str, Invocation] = {}
        self.by_task_id: dict[str, Invocation] = {}
        self.waiting = 0  # deliveries parked by hold(), so a test can wait for them instead of sleeping
        self._turn = 0
        self._released = asyncio.Event()
        self._released.set()
        self._deliveries: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None

    # The knobs

    def set_workers(self, workers: list[str]) -> None:
        """New backends, e.g. workers restarted on new ports; the next delivery goes to the first."""
        self.workers = list(workers)
        self._turn = 0

    def hold(self) -> None:
        """Accepted invocations wait, undelivered, until release()."""
        self._released.clear()

    def release(self) -> None:
        """Deliver what waited, and what comes from now on."""
        self._released.set()

    # Observing

    def invocation(self, key: str) -> Invocation:
        """An invocation by its request id or its async task id; KeyError if neither."""
        found = self.invocations.get(key) or self.by_task_id.get(key)
        if found is None:
            raise KeyError(key)
        return found

    async def wait_settled(self, key: str, timeout: float) -> Invocation:
        """Wait until the invocation (request id or task id) reaches a final state; TimeoutError naming it if not."""
        invocation = self.invocation(key)
        try:
            await asyncio.wait_for(invocation.settled.wait(), timeout)
        except TimeoutError:
            raise TimeoutError(f"invocation {key} still {invocation.state} after {timeout:g} s "
                               f"({len(invocation.attempts)} attempts)") from None
        return invocation

    # Serving

    def app(self) -> web.Application:
        """The front end as an aiohttp app; its cleanup closes the front."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._front)
        app.on_cleanup.append(self._cleanup)
        return app

    async def close(self) -> None:
        """Cancel the deliveries still under way and close the client session."""
        tasks = list(self._deliveries)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _cleanup(self, _: web.Application) -> None:
        await self.close()

    def _client(self) -> aiohttp.ClientSession:
        """One session, made in the running loop; a fresh connection each time, so a restarted worker's stale
        keep-alive connection never passes for a failure, and no pool limit, as deliveries are held open long."""
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, force_close=True),
                                                  auto_decompress=False)
        return self._session

    async def _front(self, request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-Fc-Invocation-Type", "").lower() == "async":
            return await self._accept(request)
        return await self._synchronous(request)

    # Asynchronous invocations

    async def _accept(self, request: web.Request) -> web.Response:
        """Store the invocation and answer 202 before any delivery."""
        task_id = request.headers.get("x-fc-async-task-id")
        if task_id is not None and not TASK_ID.fullmatch(task_id):
            return fc_error(400, "InvalidArgument", "x-fc-async-task-id: 1 to 128 letters, digits, '_' or '-'")
        if task_id is not None and task_id in self.by_task_id:
            return fc_error(409, "AsyncTaskAlreadyExists", f"async task {task_id} already exists")
        body = await read_capped(request, ASYNC_BODY_LIMIT)
        if body is None:
            return fc_error(413, "PayloadTooLarge", f"an async invocation's body is at most {ASYNC_BODY_LIMIT} bytes")
        invocation = self._store(request, task_id, body)
        if self.drop:
            invocation.settle("dropped")
        else:
            self._spawn(invocation)
        return web.Response(status=202, headers={"X-Fc-Request-Id": invocation.request_id})

    def _store(self, request: web.Request, task_id: str | None, body: bytes) -> Invocation:
        request_id = str(uuid.uuid4())
        headers = passed_on(request.headers, REWRITTEN)
        headers["x-fc-request-id"] = request_id
        invocation = Invocation(request_id, task_id, request.method, request.path_qs, headers, body, self.clock())
        self.invocations[request_id] = invocation
        if task_id is not None:
            self.by_task_id[task_id] = invocation
        return invocation

    def _spawn(self, invocation: Invocation) -> None:
        task = asyncio.create_task(self._deliver(invocation), name=f"fc-front-{invocation.request_id}")
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _deliver(self, invocation: Invocation) -> None:
        """Deliver until handled, retries run out or the invocation is too old; then once more if duplicating."""
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        while True:
            await self._past_hold()
            if self.clock() - invocation.accepted_at > self.max_age:
                invocation.settle("expired")
                return
            invocation.state = "delivering"
            attempt, wait = await self._attempt(invocation)
            if attempt.handled:
                break
            invocation.state = "pending"
            if len(invocation.attempts) > self.max_retries:
                invocation.settle("failed")
                return
            await asyncio.sleep(self._backoff(len(invocation.attempts) - 1, wait))
        if self.duplicate:
            await self._attempt(invocation, duplicate=True)
        invocation.settle("succeeded")

    async def _past_hold(self) -> None:
        if self._released.is_set():
            return
        self.waiting += 1
        try:
            await self._released.wait()
        finally:
            self.waiting -= 1

    def _backoff(self, failures_before: int, asked: float) -> float:
        """Seconds before the next attempt: exponential, or what Retry-After asked if longer; at most 30 s."""
        return min(max(self.retry_base * 2.0**failures_before, asked), RETRY_AFTER_CAP)

    def _next_worker(self) -> str | None:
        if not self.workers:
            return None
        worker = self.workers[self._turn % len(self.workers)]
        self._turn += 1
        return worker

    async def _attempt(self, invocation: Invocation, duplicate: bool = False) -> tuple[Attempt, float]:
        """Send the stored request to the next worker once, wait for its whole answer, and record the attempt;
        returns it and the seconds its Retry-After asked for."""
        worker = self._next_worker()
        status: int | None = None
        error: str | None = None
        asked = 0.0
        if worker is None:
            error = "no worker"
        else:
            try:
                status, asked = await self._send(worker, invocation)
            except (aiohttp.ClientError, TimeoutError) as failure:
                error = error_text(failure)
        attempt = Attempt(worker or "", status, error, self.clock(), duplicate)
        invocation.attempts.append(attempt)
        return attempt, asked

    async def _send(self, worker: str, invocation: Invocation) -> tuple[int, float]:
        timeout = aiohttp.ClientTimeout(total=self.delivery_timeout)
        async with self._client().request(invocation.method, worker + invocation.path_qs, headers=invocation.headers,
                                          data=invocation.body, timeout=timeout,
                                          skip_auto_headers=NO_AUTO_HEADERS) as reply:
            await reply.read()
            return reply.status, retry_after(reply.headers.get("Retry-After"))

    # Synchronous invocations

    async def _synchronous(self, request: web.Request) -> web.StreamResponse:
        """Pass the request to a worker (the next one that takes the connection) and stream its answer back."""
        request_id = str(uuid.uuid4())
        headers = passed_on(request.headers, frozenset({"host"}))
        headers["x-fc-request-id"] = request_id
        data = request.content if request.body_exists else None
        timeout = aiohttp.ClientTimeout(total=self.delivery_timeout)
        for _ in range(len(self.workers)):
            worker = self._next_worker()
            assert worker is not None
            try:
                async with self._client().request(request.method, worker + request.path_qs, headers=headers,
                                                  data=data, timeout=timeout,
                                                  skip_auto_headers=NO_AUTO_HEADERS) as reply:
                    return await stream_back(request, reply, request_id)
            except aiohttp.ClientConnectorError:
                continue  # refused before anything was sent: another instance takes it
        return fc_error(502, "NoInstance", "no worker took the connection")


async def read_capped(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or None once it is over `limit` bytes (told by Content-Length, or found reading)."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


async def stream_back(request: web.Request, reply: aiohttp.ClientResponse, request_id: str) -> web.StreamResponse:
    """The worker's answer to the caller as it comes, each chunk written on arrival."""
    response = web.StreamResponse(status=reply.status, reason=reply.reason,
                                  headers=passed_on(reply.headers, frozenset()))
    response.headers["X-Fc-Request-Id"] = request_id
    await response.prepare(request)
    async for chunk in reply.content.iter_any():
        await response.write(chunk)
    await response.write_eof()
    return response
