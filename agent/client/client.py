"""The agent's API for Python programs, sync (`Client`) and asyncio (`AsyncClient`), on httpx.

Both share one description of each call (`_Call`): its method, path, body and headers; what differs is only how
it is sent. A 429 or 503 is tried again after its `Retry-After` (at most `retries` times), unless that is
longer than `RETRY_LONGEST` (a key over its GPU seconds of the day waits for the next); any other error answer,
and that one, raises the agent's own exception kind (agent/client/failures.py). Replies are the server's models
(`TaskView`), not a second copy of the schema.

API keys (`create_key`, `keys`, `revoke_key`) need AGENT_TOKEN or a key with the `admin` scope; the usage they
ran up (`usage`) too, but for a key's own. A key is passed as `token`, as AGENT_TOKEN is.

A task that reads as lost (`InstanceLost`: its owner has not written for a while) is not taken as ended at the
first such read while following it (`wait`, `events`): an owner whose event loop was held up by other work
writes again, and the task goes on. It is read again for `lost_grace` seconds before the client believes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import AsyncGenerator, Awaitable, Iterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import date
from typing import Any, TypeVar

import httpx

from agent.client.failures import error_for
from agent.tasks.view import TaskView

DEFAULT_URL = "http://127.0.0.1:9000"
RETRIES = 5
RETRY_LONGEST = 30.0
POLL_SECONDS = 0.5
LOST_GRACE = 60.0
FINISHED = ("succeeded", "failed", "canceled")
DEFAULT_SCOPES = ("run", "read")
# What a key may spend, each None for no limit: requests a minute, runs at once, GPU seconds a day and a month.
LIMITS = ("requests_per_minute", "concurrent_runs", "gpu_seconds_per_day", "gpu_seconds_per_month")
T = TypeVar("T")


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)


def _run_call(path: str, body: Any, task_id: str | None, background: bool | str) -> _Call:
    """`background`: True for the agent's own (`Prefer: respond-async`); `"fc"` for FC's asynchronous
    invocation, where FC answers 202 and delivers the run to an instance later, under the same task id."""
    task_id = task_id or uuid.uuid4().hex
    if background == "fc":
        return _Call("POST", path, body, {"X-Fc-Invocation-Type": "Async", "x-fc-async-task-id": task_id})
    headers = {"task-id": task_id}
    if background:
        headers["Prefer"] = "respond-async"
    return _Call("POST", path, body, headers)


def _is_lost(status: str | None, error: dict[str, Any] | None) -> bool:
    """The task reads as failed because its instance has not been heard from (it may only be slow)."""
    return status == "failed" and (error or {}).get("message") == "InstanceLost"


def _wait_for(response: httpx.Response) -> float | None:
    """Seconds to wait before trying again, when the agent said to; None when it is no answer to retry, or when
    the wait it asks is longer than a caller would sit through."""
    if response.status_code not in (429, 503):
        return None
    try:
        wait = float(response.headers.get("Retry-After", "1"))
    except ValueError:
        return 1.0
    return wait if wait <= RETRY_LONGEST else None


def _answer(response: httpx.Response) -> Any:
    try:
        body = response.json()
    except ValueError:
        body = response.text
    if response.status_code >= 400:
        raise error_for(response.status_code, body)
    return body


def _headers(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def _calls_for_run(graph: dict[str, Any], options: dict[str, Any] | None, task_id: str | None,
                   background: bool | str) -> _Call:
    return _run_call("/api/run", {"prompt": graph, "options": options or {}}, task_id, background)


def _calls_for_workflow(name: str, params: dict[str, Any] | None, options: dict[str, Any] | None,
                        task_id: str | None, background: bool | str) -> _Call:
    return _run_call(f"/api/workflows/{name}/run", {"params": params or {}, "options": options or {}}, task_id,
                     background)


def _key_call(name: str, scopes: Sequence[str], limits: dict[str, float | None] | None) -> _Call:
    """Every limit is sent, None where it is not set: the body says the whole key, not a change to one."""
    return _Call("POST", "/api/keys", {"name": name, "scopes": list(scopes),
                                       "limits": {**dict.fromkeys(LIMITS), **(limits or {})}})


def _usage_call(key: str | None, start: str | date | None, end: str | date | None, group: str | None,
                headers: dict[str, str]) -> _Call:
    """Only what is given goes in the query: the agent's defaults (every key, its own span) stand for the rest."""
    params = {"key": key, "from": start, "to": end, "group": group}
    return _Call("GET", "/api/usage", headers=headers,
                 params={name: str(value) for name, value in params.items() if value is not None})


class SseParser:
    """Server-Sent Events, line by line: `feed` returns `(event, data)` at the blank line ending one; `last_id` is
    the id of the last one that had an id (to resume the stream after it)."""

    def __init__(self) -> None:
        self.fields: dict[str, str] = {}
        self.last_id: str | None = None

    def feed(self, line: str) -> tuple[str, Any] | None:
        if line.startswith(":"):
            return None  # a comment (the heartbeat)
        if line:
            name, _, value = line.partition(": ")
            self.fields[name] = value
            return None
        if not self.fields:
            return None
        fields, self.fields = self.fields, {}
        self.last_id = fields.get("id", self.last_id)
        return fields.get("event", "message"), json.loads(fields.get("data", "null"))


class AsyncClient:
    """`AsyncClient(url, token)`: url and token default to `COMFYUI_AGENT_URL` and `AGENT_TOKEN`; `lost_grace`:
    seconds a followed task may read as lost before the client takes it as ended."""

    def __init__(self, url: str | None = None, token: str | None = None, retries: int = RETRIES,
                 timeout: float = 600.0, lost_grace: float = LOST_GRACE) -> None:
        self.url = (url or os.environ.get("COMFYUI_AGENT_URL") or DEFAULT_URL).rstrip("/")
        self.retries = retries
        self.lost_grace = lost_grace
        self.http = httpx.AsyncClient(base_url=self.url, timeout=timeout,
                                      headers=_headers(token or os.environ.get("AGENT_TOKEN")))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.http.aclose()

    async def _send(self, call: _Call) -> Any:
        for attempt in range(self.retries + 1):
            response = await self.http.request(call.method, call.path, json=call.body, headers=call.headers,
                                               params=call.params)
            wait = _wait_for(response)
            if wait is None or attempt == self.retries:
                return _answer(response)
            await asyncio.sleep(wait)
        raise AssertionError("unreachable")

    async def run(self, graph: dict[str, Any], options: dict[str, Any] | None = None, task_id: str | None = None,
                  background: bool | str = False) -> dict[str, Any]:
        """The `TProgress` map of a held run, or `{"task_id", "status_url"}` for one in the background."""
        reply: dict[str, Any] = await self._send(_calls_for_run(graph, options, task_id, background))
        return reply

    async def run_workflow(self, name: str, params: dict[str, Any] | None = None,
                           options: dict[str, Any] | None = None, task_id: str | None = None,
                           background: bool | str = False) -> dict[str, Any]:
        reply: dict[str, Any] = await self._send(_calls_for_workflow(name, params, options, task_id, background))
        return reply

    async def task(self, task_id: str, results: bool = False) -> TaskView:
        return TaskView.model_validate(await self._send(_Call("GET", f"/api/tasks/{task_id}",
                                                              params={"results": str(results).lower()})))

    async def _believed(self, task_id: str) -> TaskView:
        """The task as it reads, except that a lost one is read again until it is not, or for `lost_grace`
        seconds: only then is its instance taken as gone."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.lost_grace
        while True:
            task = await self.task(task_id)
            if not _is_lost(task.status, task.error) or loop.time() >= deadline:
                return task
            await asyncio.sleep(POLL_SECONDS)

    async def wait(self, task_id: str, results: bool = True) -> TaskView:
        """Poll until the task ends (the event stream, `events`, tells the same as it happens)."""
        while (task := await self._believed(task_id)).status not in FINISHED:  # noqa: ASYNC110 - a remote task
            await asyncio.sleep(POLL_SECONDS)
        return await self.task(task_id, results) if results else task

    async def _stream(self, task_id: str, parser: SseParser) -> AsyncGenerator[tuple[str, Any], None]:
        """One event stream of the task, from after the last event `parser` saw, until the agent closes it."""
        headers = {"Last-Event-ID": parser.last_id} if parser.last_id is not None else {}
        async with self.http.stream("GET", f"/api/tasks/{task_id}/events", headers=headers) as response:
            if response.status_code >= 400:
                await response.aread()
                _answer(response)
            async for line in response.aiter_lines():
                if (event := parser.feed(line)) is not None:
                    yield event

    async def events(self, task_id: str) -> AsyncGenerator[tuple[str, Any], None]:
        """The task's events as they happen (`status`, `progress`, `preview`, `output`, `end`). An end that says
        the task's instance is lost comes as `lost` first, while the task is read again (see `lost_grace`):
        when its instance is heard from again, the stream goes on from where it was, to the task's real end."""
        parser = SseParser()
        while True:
            async with aclosing(self._stream(task_id, parser)) as stream:
                async for kind, data in stream:
                    if kind == "end" and _is_lost(data.get("status"), data.get("error")):
                        break
                    yield kind, data
                    if kind == "end":
                        return
                else:
                    return  # the agent closed the stream without an end
            yield "lost", data
            task = await self._believed(task_id)
            if _is_lost(task.status, task.error):
                yield "end", task.model_dump()
                return

    async def cancel(self, task_id: str) -> TaskView:
        return TaskView.model_validate(await self._send(_Call("POST", f"/api/tasks/{task_id}/cancel")))

    async def workflows(self) -> list[dict[str, Any]]:
        listed: list[dict[str, Any]] = (await self._send(_Call("GET", "/api/workflows")))["workflows"]
        return listed

    async def workflow(self, name: str) -> dict[str, Any]:
        """One workflow as `workflows` lists it, with its graph (`graph`)."""
        found: dict[str, Any] = await self._send(_Call("GET", f"/api/workflows/{name}"))
        return found

    async def publish(self, definition: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        """Publish `{name, title, description, graph, parameters}` (the graph in either format; parameters left
        out are proposed) as the next version of its name; `dry_run`: what would be published, nothing kept."""
        call = _Call("POST", "/api/workflows", definition, params={"dry_run": "true"} if dry_run else {})
        published: dict[str, Any] = await self._send(call)
        return published

    async def retire(self, reference: str) -> list[int]:
        """Retire `NAME@VERSION`, or every version of `NAME`; returns the versions retired."""
        retired: list[int] = (await self._send(_Call("DELETE", f"/api/workflows/{reference}")))["retired"]
        return retired

    async def create_key(self, name: str, scopes: Sequence[str] = DEFAULT_SCOPES,
                         limits: dict[str, float | None] | None = None) -> dict[str, Any]:
        """A new key named `name`; `limits`: any of `LIMITS`. The reply's `key` is the only time it is shown."""
        created: dict[str, Any] = await self._send(_key_call(name, scopes, limits))
        return created

    async def keys(self) -> list[dict[str, Any]]:
        """Every key's record, revoked ones too (`revoked_at`), never the key itself."""
        listed: list[dict[str, Any]] = (await self._send(_Call("GET", "/api/keys")))["keys"]
        return listed

    async def revoke_key(self, name: str) -> dict[str, Any]:
        revoked: dict[str, Any] = await self._send(_Call("DELETE", f"/api/keys/{name}"))
        return revoked

    async def usage(self, key: str | None = None, start: str | date | None = None, end: str | date | None = None,
                    group: str | None = None) -> dict[str, Any]:
        """What the keys ran up from `start` to `end` (days), `rows` by `day` or by `key`, and their `totals`."""
        used: dict[str, Any] = await self._send(_usage_call(key, start, end, group, {}))
        return used

    async def usage_csv(self, key: str | None = None, start: str | date | None = None,
                        end: str | date | None = None, group: str | None = None) -> str:
        """`usage`'s rows as the agent writes them in CSV, a header line first, for a spreadsheet."""
        text: str = await self._send(_usage_call(key, start, end, group, {"Accept": "text/csv"}))
        return text

    async def fetch(self, url: str) -> bytes:
        """An output's bytes from its signed URL (the token is not sent to the store)."""
        async with httpx.AsyncClient(timeout=self.http.timeout) as plain:
            response = await plain.get(url)
        response.raise_for_status()
        return response.content


class Client:
    """The same calls without asyncio, each run to its end on the client's own event loop (in asyncio code,
    use `AsyncClient`)."""

    def __init__(self, url: str | None = None, token: str | None = None, retries: int = RETRIES,
                 timeout: float = 600.0, lost_grace: float = LOST_GRACE) -> None:
        self._loop = asyncio.new_event_loop()
        self.calls = AsyncClient(url, token, retries, timeout, lost_grace)
        self.url = self.calls.url

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._loop.run_until_complete(self.calls.http.aclose())
        self._loop.close()

    def _wait(self, work: Awaitable[T]) -> T:
        return self._loop.run_until_complete(work)

    def run(self, graph: dict[str, Any], options: dict[str, Any] | None = None, task_id: str | None = None,
            background: bool | str = False) -> dict[str, Any]:
        return self._wait(self.calls.run(graph, options, task_id, background))

    def run_workflow(self, name: str, params: dict[str, Any] | None = None, options: dict[str, Any] | None = None,
                     task_id: str | None = None, background: bool | str = False) -> dict[str, Any]:
        return self._wait(self.calls.run_workflow(name, params, options, task_id, background))

    def task(self, task_id: str, results: bool = False) -> TaskView:
        return self._wait(self.calls.task(task_id, results))

    def wait(self, task_id: str, results: bool = True) -> TaskView:
        return self._wait(self.calls.wait(task_id, results))

    def events(self, task_id: str) -> Iterator[tuple[str, Any]]:
        stream = self.calls.events(task_id)
        try:
            while True:
                try:
                    yield self._wait(anext(stream))
                except StopAsyncIteration:
                    return
        finally:
            self._wait(stream.aclose())

    def cancel(self, task_id: str) -> TaskView:
        return self._wait(self.calls.cancel(task_id))

    def workflows(self) -> list[dict[str, Any]]:
        return self._wait(self.calls.workflows())

    def workflow(self, name: str) -> dict[str, Any]:
        return self._wait(self.calls.workflow(name))

    def publish(self, definition: dict[str, Any], dry_run: bool = False) -> dict[str, Any]:
        return self._wait(self.calls.publish(definition, dry_run))

    def retire(self, reference: str) -> list[int]:
        return self._wait(self.calls.retire(reference))

    def create_key(self, name: str, scopes: Sequence[str] = DEFAULT_SCOPES,
                   limits: dict[str, float | None] | None = None) -> dict[str, Any]:
        return self._wait(self.calls.create_key(name, scopes, limits))

    def keys(self) -> list[dict[str, Any]]:
        return self._wait(self.calls.keys())

    def revoke_key(self, name: str) -> dict[str, Any]:
        return self._wait(self.calls.revoke_key(name))

    def usage(self, key: str | None = None, start: str | date | None = None, end: str | date | None = None,
              group: str | None = None) -> dict[str, Any]:
        return self._wait(self.calls.usage(key, start, end, group))

    def usage_csv(self, key: str | None = None, start: str | date | None = None, end: str | date | None = None,
                  group: str | None = None) -> str:
        return self._wait(self.calls.usage_csv(key, start, end, group))

    def fetch(self, url: str) -> bytes:
        return self._wait(self.calls.fetch(url))
