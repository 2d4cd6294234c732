"""FcFront, the tests' stand-in for FC's front end, against small workers in this process: that it accepts,
delivers, retries, expires and streams as FC's documentation says FC does."""

from __future__ import annotations

import asyncio
import email.utils
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from agent_harness import serving
from fc_front import ASYNC_BODY_LIMIT, FcFront, retry_after
from waiting import EVENTUALLY, until

ASYNC = {"X-Fc-Invocation-Type": "Async"}


@dataclass
class Seen:
    """A request as a worker received it."""

    method: str
    path_qs: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class Worker:
    """A worker that records what it receives and answers `statuses` in turn, then 200; a status given with
    `retry_after` carries that header. While `gate` is unset a request waits for it (after being recorded)."""

    statuses: list[int] = field(default_factory=list)
    retry_after: str | None = None
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    seen: list[Seen] = field(default_factory=list)
    busy: int = 0
    most_busy: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.Response:
        self.busy += 1
        self.most_busy = max(self.most_busy, self.busy)
        try:
            self.seen.append(Seen(request.method, request.path_qs, request.headers, await request.read()))
            await self.gate.wait()
            status = self.statuses.pop(0) if self.statuses else 200
            headers = {"Retry-After": self.retry_after} if self.retry_after and status != 200 else {}
            return web.Response(status=status, text=f"answer {status}", headers=headers)
        finally:
            self.busy -= 1


@asynccontextmanager
async def front_over(*workers: str, **options: Any) -> AsyncIterator[tuple[FcFront, str]]:
    """A front over `workers` on a free port, with fast retries unless told otherwise."""
    options.setdefault("retry_base", 0.01)
    front = FcFront(list(workers), **options)
    async with serving(front.app()) as url:
        yield front, url


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[str]:
    async with serving(worker.app()) as url:
        yield url


def closed_port() -> str:
    """The URL of a loopback port nothing listens on: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


async def invoke(front_url: str, path: str = "/run", **kwargs: Any) -> str:
    """An async invocation through the front; returns FC's request id after checking the 202."""
    headers = {**ASYNC, **kwargs.pop("headers", {})}
    async with aiohttp.ClientSession() as session, session.post(front_url + path, headers=headers, **kwargs) as reply:
        assert reply.status == 202, await reply.text()
        return reply.headers["X-Fc-Request-Id"]


async def status_of(front_url: str, **kwargs: Any) -> int:
    headers = {**ASYNC, **kwargs.pop("headers", {})}
    async with aiohttp.ClientSession() as session, session.post(front_url + "/run", headers=headers, **kwargs) as reply:
        return reply.status


async def test_async_invocation_answers_202_with_request_id_before_delivery_ends() -> None:
    worker = Worker()
    worker.gate.clear()
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        request_id = await invoke(url, json={"prompt": 1})
        assert front.invocations[request_id].state in {"pending", "delivering"}
        worker.gate.set()
        invocation = await front.wait_settled(request_id, EVENTUALLY)
    assert invocation.state == "succeeded"
    assert [attempt.status for attempt in invocation.attempts] == [200]


async def test_delivered_request_is_the_callers_request() -> None:
    worker = Worker()
    body = b'{"prompt": {"3": {}}}'
    headers = {"Content-Type": "application/json", "X-Custom": "kept", "Authorization": "Bearer t",
               "x-fc-async-task-id": "task_1-a", "Connection": "keep-alive, X-Hop", "X-Hop": "gone"}
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        request_id = await invoke(url, "/api/run?wait=false&n=2", data=body, headers=headers)
        await front.wait_settled(request_id, EVENTUALLY)
    [seen] = worker.seen
    assert (seen.method, seen.path_qs, seen.body) == ("POST", "/api/run?wait=false&n=2", body)
    for name in ("Content-Type", "X-Custom", "Authorization", "x-fc-async-task-id"):
        assert seen.headers.getall(name) == [headers[name]], name
    assert seen.headers.getall("X-Fc-Invocation-Type") == ["Async"]
    assert seen.headers.getall("x-fc-request-id") == [request_id]
    assert "X-Hop" not in seen.headers
    assert seen.headers["Content-Length"] == str(len(body))


async def test_invocation_is_found_by_its_async_task_id() -> None:
    worker = Worker()
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        request_id = await invoke(url, headers={"x-fc-async-task-id": "job-7"})
        invocation = await front.wait_settled("job-7", EVENTUALLY)
    assert invocation is front.invocations[request_id]
    assert (invocation.task_id, invocation.state) == ("job-7", "succeeded")


async def test_reused_async_task_id_is_refused_with_409() -> None:
    async with front_over() as (front, url):
        front.hold()
        await invoke(url, headers={"x-fc-async-task-id": "same"})
        assert await status_of(url, headers={"x-fc-async-task-id": "same"}) == 409
    assert len(front.invocations) == 1


@pytest.mark.parametrize("task_id", ["", "has space", "x" * 129, "slash/id"])
async def test_malformed_async_task_id_is_refused_with_400(task_id: str) -> None:
    async with front_over() as (front, url):
        assert await status_of(url, headers={"x-fc-async-task-id": task_id}) == 400
    assert front.invocations == {}


async def test_body_over_128_kb_is_refused_with_413() -> None:
    async with front_over() as (front, url):
        front.hold()
        assert await status_of(url, data=b"x" * (ASYNC_BODY_LIMIT + 1)) == 413
        assert await status_of(url, data=b"x" * ASYNC_BODY_LIMIT) == 202

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(3):
                yield b"x" * (ASYNC_BODY_LIMIT // 2)

        assert await status_of(url, data=chunks()) == 413  # no Content-Length: found too big while reading
    assert len(front.invocations) == 1


async def test_500_is_retried_until_the_worker_handles_it() -> None:
    worker = Worker(statuses=[500, 503])
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        invocation = await front.wait_settled(await invoke(url, data=b"again"), EVENTUALLY)
    assert invocation.state == "succeeded"
    assert [attempt.status for attempt in invocation.attempts] == [500, 503, 200]
    assert [seen.body for seen in worker.seen] == [b"again"] * 3


async def test_4xx_other_than_429_is_handled_not_retried() -> None:
    worker = Worker(statuses=[422])
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    assert (invocation.state, [attempt.status for attempt in invocation.attempts]) == ("succeeded", [422])


async def test_exhausted_retries_leave_the_invocation_failed() -> None:
    worker = Worker(statuses=[500] * 10)
    async with running(worker) as worker_url, front_over(worker_url, max_retries=2) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    assert invocation.state == "failed"
    assert [attempt.status for attempt in invocation.attempts] == [500, 500, 500]
    assert len(worker.seen) == 3


async def test_retries_back_off_exponentially() -> None:
    worker = Worker(statuses=[500, 500])
    async with running(worker) as worker_url, front_over(worker_url, retry_base=0.1) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    times = [attempt.at for attempt in invocation.attempts]
    assert times[1] - times[0] >= 0.1
    assert times[2] - times[1] >= 0.2


async def test_429_is_retried_after_its_retry_after() -> None:
    worker = Worker(statuses=[429], retry_after="1")
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    first, second = invocation.attempts
    assert (first.status, second.status, invocation.state) == (429, 200, "succeeded")
    assert second.at - first.at >= 1.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) == retry_after("soon") == 0.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # long past
    assert 50 < retry_after(_http_date(60)) <= 60


def _http_date(seconds_from_now: float) -> str:
    return email.utils.formatdate(time.time() + seconds_from_now, usegmt=True)


async def test_refused_connection_is_a_failed_attempt_retried_on_the_next_worker() -> None:
    worker = Worker()
    refused = closed_port()
    async with running(worker) as worker_url, front_over(refused, worker_url) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    first, second = invocation.attempts
    assert (first.worker, first.status) == (refused, None)
    assert first.error
    assert (second.worker, second.status, invocation.state) == (worker_url, 200, "succeeded")


async def test_read_timeout_is_a_failed_attempt() -> None:
    slow, quick = Worker(), Worker()
    slow.gate.clear()
    async with running(slow) as slow_url, running(quick) as quick_url, \
            front_over(slow_url, quick_url, delivery_timeout=0.3) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
        slow.gate.set()
    first, second = invocation.attempts
    assert (first.status, first.error) == (None, "TimeoutError")
    assert (second.worker, second.status) == (quick_url, 200)


async def test_no_worker_at_all_is_a_failed_attempt() -> None:
    async with front_over(max_retries=1) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    assert invocation.state == "failed"
    assert [(attempt.worker, attempt.error) for attempt in invocation.attempts] == [("", "no worker")] * 2


async def test_set_workers_sends_later_deliveries_to_the_new_backends() -> None:
    worker = Worker()
    async with running(worker) as worker_url, front_over(closed_port()) as (front, url):
        front.hold()
        request_id = await invoke(url)
        front.set_workers([worker_url])
        front.release()
        invocation = await front.wait_settled(request_id, EVENTUALLY)
    assert [(attempt.worker, attempt.status) for attempt in invocation.attempts] == [(worker_url, 200)]


async def test_held_invocations_wait_until_release() -> None:
    worker = Worker()
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        front.hold()
        ids = [await invoke(url), await invoke(url)]

        async def both_parked() -> bool:
            return front.waiting == 2

        await until(both_parked, EVENTUALLY, "both deliveries parked at the hold")
        assert worker.seen == []
        assert [front.invocations[i].state for i in ids] == ["pending", "pending"]
        front.release()
        settled = [await front.wait_settled(i, EVENTUALLY) for i in ids]
    assert [invocation.state for invocation in settled] == ["succeeded", "succeeded"]
    assert sorted(seen.headers["x-fc-request-id"] for seen in worker.seen) == sorted(ids)


async def test_duplicate_delivers_every_invocation_twice_one_after_the_other() -> None:
    worker = Worker()
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        front.duplicate = True
        request_id = await invoke(url, data=b"twice", headers={"x-fc-async-task-id": "dup"})
        invocation = await front.wait_settled(request_id, EVENTUALLY)
    assert invocation.state == "succeeded"
    assert [(attempt.status, attempt.duplicate) for attempt in invocation.attempts] == [(200, False), (200, True)]
    assert [(seen.body, seen.headers["x-fc-request-id"]) for seen in worker.seen] == [(b"twice", request_id)] * 2
    assert worker.most_busy == 1  # the second came after the first's answer


async def test_drop_accepts_but_never_delivers() -> None:
    worker = Worker()
    async with running(worker) as worker_url, front_over(worker_url) as (front, url):
        front.drop = True
        dropped = await front.wait_settled(await invoke(url, headers={"x-fc-async-task-id": "lost"}), EVENTUALLY)
        front.drop = False
        delivered = await front.wait_settled(await invoke(url), EVENTUALLY)  # what came after it did arrive
    assert (dropped.state, dropped.attempts) == ("dropped", [])
    assert delivered.state == "succeeded"
    assert [seen.headers["x-fc-request-id"] for seen in worker.seen] == [delivered.request_id]


class Clock:
    """A clock the test moves on by hand, so an invocation ages without the test waiting."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_invocation_past_max_age_is_expired_not_delivered() -> None:
    worker, clock = Worker(), Clock()
    async with running(worker) as worker_url, front_over(worker_url, max_age=60, clock=clock) as (front, url):
        front.hold()
        request_id = await invoke(url)
        clock.now += 61
        front.release()
        invocation = await front.wait_settled(request_id, EVENTUALLY)
    assert (invocation.state, invocation.attempts, worker.seen) == ("expired", [], [])


async def test_invocation_aging_past_max_age_between_retries_is_expired() -> None:
    clock = Clock()

    async def fail_and_age(_: web.Request) -> web.Response:
        clock.now += 61
        return web.Response(status=500)

    app = web.Application()
    app.router.add_post("/run", fail_and_age)
    async with serving(app) as worker_url, front_over(worker_url, max_age=60, clock=clock) as (front, url):
        invocation = await front.wait_settled(await invoke(url), EVENTUALLY)
    assert invocation.state == "expired"
    assert [attempt.status for attempt in invocation.attempts] == [500]


async def test_synchronous_request_is_streamed_chunk_by_chunk() -> None:
    first_read = asyncio.Event()

    async def events(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"data: first\n\n")
        await first_read.wait()
        await response.write(b"data: second\n\n")
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_get("/events", events)
    async with serving(app) as worker_url, front_over(worker_url) as (_, url), aiohttp.ClientSession() as session, \
            session.get(url + "/events") as reply:
        assert (reply.status, reply.content_type) == (200, "text/event-stream")
        assert "X-Fc-Request-Id" in reply.headers
        first = await asyncio.wait_for(reply.content.readuntil(b"\n\n"), EVENTUALLY)  # the front would hang here
        first_read.set()                                                            # if it buffered the answer
        rest = await asyncio.wait_for(reply.content.read(), EVENTUALLY)
    assert (first, rest) == (b"data: first\n\n", b"data: second\n\n")


async def test_synchronous_request_passes_body_status_and_headers_both_ways() -> None:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(status=201, body=await request.read(), headers={"X-Worker": request.headers["X-Caller"]})

    app = web.Application()
    app.router.add_put("/echo", echo)
    async with serving(app) as worker_url, front_over(closed_port(), worker_url) as (front, url), \
            aiohttp.ClientSession() as session, \
            session.put(url + "/echo?q=1", data=b"payload", headers={"X-Caller": "me"}) as reply:
        assert (reply.status, await reply.read(), reply.headers["X-Worker"]) == (201, b"payload", "me")
    assert front.invocations == {}  # synchronous: nothing stored


async def test_synchronous_request_with_no_worker_answers_502() -> None:
    async with front_over(closed_port()) as (_, url), aiohttp.ClientSession() as session, \
            session.get(url + "/anything") as reply:
        assert reply.status == 502


async def test_close_cancels_pending_deliveries() -> None:
    front = FcFront([closed_port()], retry_base=60)
    async with serving(front.app()) as url:
        invocation = front.invocation(await invoke(url))

        async def attempted() -> bool:
            return bool(invocation.attempts)

        await until(attempted, EVENTUALLY, "the first attempt")
    # serving's exit ran the app's cleanup: the delivery sleeping out its 60 s backoff is gone
    assert invocation.state == "pending"
    assert not invocation.settled.is_set()


async def test_wait_settled_times_out_naming_the_state_and_knows_no_stranger() -> None:
    async with front_over() as (front, url):
        front.hold()
        request_id = await invoke(url)
        with pytest.raises(TimeoutError, match="still pending"):
            await front.wait_settled(request_id, 0.05)
        with pytest.raises(KeyError):
            await front.wait_settled("no-such-id", 0.05)
