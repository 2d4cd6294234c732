"""The GPU function, as the gateway reaches it: FC's HTTP trigger at `WORKER_URL`.

An asynchronous invocation (`X-Fc-Invocation-Type: Async`) is stored by FC, answered 202, and delivered to an
instance later, once or more; a synchronous one is held by FC until the instance answers. Both carry the
worker's bearer token. FC's answers become the agent's own failures here; nothing above knows FC's statuses.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping

import aiohttp
from pydantic import SecretStr

from agent.errors import TaskConflict, WorkerUnavailable

# FC's cap on an asynchronous invocation's body (a synchronous one takes 32 MB): larger inputs go by URL.
ASYNC_BODY_LIMIT = 128 * 1024
# FC answers an asynchronous invocation once it has stored it, in milliseconds; past this something is wrong.
ASYNC_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)
RETRY_AFTER_REFUSED = 5


class WorkerFunction:
    def __init__(self, url: str, token: SecretStr | None, session: aiohttp.ClientSession,
                 held_timeout: float) -> None:
        self.url = url
        self.session = session
        self.held_timeout = aiohttp.ClientTimeout(total=held_timeout, sock_connect=10)
        self._auth = {"Authorization": f"Bearer {token.get_secret_value()}"} if token is not None else {}

    async def invoke_async(self, path_qs: str, body: bytes, task_id: str, extra: Mapping[str, str]) -> str:
        """Hand the request to FC's queue under `task_id`; returns FC's request id."""
        headers = {**extra, **self._auth, "Content-Type": "application/json", "X-Fc-Invocation-Type": "Async",
                   "x-fc-async-task-id": task_id}
        try:
            async with self.session.post(self.url + path_qs, data=body, headers=headers,
                                         timeout=ASYNC_TIMEOUT) as reply:
                text = (await reply.text(errors="replace"))[:300]
                if reply.status == 202:
                    return reply.headers.get("x-fc-request-id", "")
                raise _refusal(reply.status, reply.headers, text, task_id)
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise WorkerUnavailable(f"the GPU function did not take the run: {type(exc).__name__}: {exc}",
                                    retry_after=RETRY_AFTER_REFUSED) from exc

    @contextlib.asynccontextmanager
    async def invoke(self, method: str, path_qs: str, headers: Mapping[str, str],
                     body: bytes) -> AsyncIterator[aiohttp.ClientResponse]:
        """A synchronous invocation, its answer to be read as it comes (a run's reply, or its event stream)."""
        try:
            async with self.session.request(method, self.url + path_qs, data=body,
                                            headers={**headers, **self._auth}, timeout=self.held_timeout) as reply:
                yield reply
        except (TimeoutError, aiohttp.ClientConnectionError, OSError) as exc:
            raise WorkerUnavailable(f"the GPU function could not be reached: {type(exc).__name__}: {exc}",
                                    retry_after=RETRY_AFTER_REFUSED) from exc


def _refusal(status: int, headers: Mapping[str, str], text: str, task_id: str) -> Exception:
    if status == 409:  # FC's own rule: an asynchronous task id is used once
        return TaskConflict(f"FC already holds an asynchronous task {task_id}; use a new task id", task_id=task_id)
    if status in (401, 403):
        return WorkerUnavailable(f"the GPU function refused the gateway ({status}): check WORKER_TOKEN",
                                 retry_after=RETRY_AFTER_REFUSED)
    retry_after = headers.get("Retry-After", "")
    return WorkerUnavailable(f"the GPU function answered {status}: {text}",
                             retry_after=int(retry_after) if retry_after.isdigit() else RETRY_AFTER_REFUSED)
