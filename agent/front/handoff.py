"""Runs handed to the GPU function, for a gateway (agent/gateway/): checked here as a worker would check them
(body, task id, parameters, inputs' form and size), so a bad request never wakes a GPU instance, then

- in the background or streamed: recorded and handed to FC as an asynchronous invocation (gateway/handoff.py);
  a stream follows its events from the store;
- held: forwarded as a synchronous invocation, the worker's answer relayed as it comes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

from yarl import URL

from agent.access.limits import Limiter
from agent.access.principal import Principal
from agent.config import WebhookSettings
from agent.errors import AgentError, RequestTooLarge
from agent.front.base import Front, Held, Mode, Relayed, Submission
from agent.gateway.handoff import ON_BEHALF_HEADER, Handoff
from agent.gateway.worker import ASYNC_BODY_LIMIT, WorkerFunction
from agent.inputs.slots import Loaders
from agent.models.refs import model_refs
from agent.outputs.delivery import OutputStore
from agent.tasks.model import Task, when_long
from agent.webhooks.address import check_webhook

# Not passed on: hop-by-hop headers, the caller's credentials for the gateway (the worker gets its own token),
# and what FC sets on each invocation itself.
_DROPPED_REQUEST = frozenset({"host", "connection", "keep-alive", "transfer-encoding", "content-length",
                              "authorization", "cookie", "prefer", "x-fc-invocation-type", "x-fc-async-task-id"})
_DROPPED_REPLY = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding"})


def _kept(headers: Mapping[str, str], dropped: frozenset[str]) -> dict[str, str]:
    return {key: value for key, value in headers.items() if key.lower() not in dropped}


def _path_for_worker(path: str) -> str:
    """The path and query as the worker must get them: never in the background there (FC holds the invocation
    while the worker runs it; a worker answering 202 would be frozen mid-run)."""
    url = URL(path)
    return str(url.with_query({key: value for key, value in url.query.items() if key not in ("async", "token")}))


class HandoffFront(Front):
    def __init__(self, handoff: Handoff, worker: WorkerFunction, loaders: Loaders, webhooks: WebhookSettings,
                 outputs: OutputStore | None = None, *, model_loaders: Mapping[str, str], limiter: Limiter) -> None:
        super().__init__(handoff.records, outputs, limiter)
        self.handoff = handoff
        self.worker = worker
        self.loaders = loaders
        self.webhooks = webhooks
        self.model_loaders = model_loaders

    def room(self, mode: Mode) -> None:
        """A gateway holds no run: FC and the workers say when they are full."""

    async def check(self, submission: Submission) -> None:
        await when_long(self.loaders.check, submission.prompt)
        model_refs(submission.prompt, self.model_loaders)  # a bad model reference wakes no GPU
        await check_webhook(submission.options.webhook, self.webhooks)
        if submission.mode is not Mode.HELD and len(submission.body) > ASYNC_BODY_LIMIT:
            raise RequestTooLarge(
                f"a run handed off in the background is at most {ASYNC_BODY_LIMIT} bytes (FC's cap on an "
                "asynchronous invocation); pass input files by URL (http(s), oss://, s3://) rather than base64, "
                "or hold the request", limit=ASYNC_BODY_LIMIT)

    async def refused(self, task_id: str, error: AgentError) -> None:
        """Nothing was recorded yet: the caller hears of it, and that is all."""

    @asynccontextmanager
    async def hold(self, submission: Submission) -> AsyncIterator[Held]:
        headers = {**_kept(submission.headers, _DROPPED_REQUEST), "task-id": submission.task_id,
                   ON_BEHALF_HEADER: submission.owner.name}
        async with self.worker.invoke("POST", _path_for_worker(submission.path), headers,
                                      submission.body) as reply:
            yield Relayed(reply.status, reply.reason, _kept(reply.headers, _DROPPED_REPLY),
                          reply.content.iter_any())

    async def settled(self, task_id: str, reader: Principal, within: float) -> None:
        """A gateway runs nothing itself: there is nothing here to wait for."""

    async def start(self, submission: Submission, wait: float = 0) -> Task:
        """A worker takes the run later: nothing to wait for here."""
        return await self.handoff.hand_off(submission.task_id, submission.prompt, submission.options,
                                    _path_for_worker(submission.path), submission.body, key=submission.owner.name)

    async def stop(self, task_id: str) -> Task:
        task = await self.handoff.cancel(task_id)
        if task.status.finished:  # ended before a worker took it (a worker's run frees its own place)
            await self.limiter.release(task.key, task_id)
        return task
