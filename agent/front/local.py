"""Runs on this instance: the run service admits, claims and runs them (agent/runs/service.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent.access.limits import Limiter
from agent.access.principal import Principal
from agent.buckets.clients import Buckets
from agent.config import WebhookSettings
from agent.errors import AgentError, RequestParamsError
from agent.front.base import Fetched, Front, Held, Mode, Submission
from agent.gateway.delivery import refuse_delivery
from agent.outputs.reading import read_output
from agent.runs.run import Run
from agent.runs.service import RunService
from agent.tasks.model import ImageRef, Task
from agent.webhooks.address import check_webhook


class LocalFront(Front):
    def __init__(self, runs: RunService, buckets: Buckets, webhooks: WebhookSettings, limiter: Limiter) -> None:
        super().__init__(runs.records, runs.output_store, limiter)
        self.runs = runs
        self.buckets = buckets
        self.webhooks = webhooks

    def room(self, mode: Mode) -> None:
        self.runs.check_room(mode is Mode.BACKGROUND)

    async def check(self, submission: Submission) -> None:
        if self.runs.output_store is None and submission.options.delivery == "url":
            raise RequestParamsError("option output.delivery: `url` needs an output store (OUTPUT_STORE)")
        await check_webhook(submission.options.webhook, self.webhooks)

    async def refused(self, task_id: str, error: AgentError) -> None:
        await refuse_delivery(self.records, task_id, error)

    @asynccontextmanager
    async def hold(self, submission: Submission) -> AsyncIterator[Held]:
        run = await self._submit(submission)
        yield await run.outcome()

    async def start(self, submission: Submission, wait: float = 0) -> Task:
        run = await self._submit(submission)
        if run.ended:  # a retried delivery of a task that succeeded
            return (await run.outcome()).task
        if wait > 0:
            with contextlib.suppress(TimeoutError):
                if (ended := await asyncio.wait_for(run.taken(), wait)) is not None:
                    return ended.task
        return run.snapshot()

    async def _submit(self, submission: Submission) -> Run:
        self.buckets.offer(submission.headers)  # FC's credentials of this invocation, for the run's buckets
        return await self.runs.submit(submission.task_id, submission.prompt, submission.options,
                                      background=submission.mode is Mode.BACKGROUND, key=submission.owner.name)

    async def stop(self, task_id: str) -> Task:
        return await self.runs.cancel(task_id)

    async def settled(self, task_id: str, reader: Principal, within: float) -> None:
        run = self.runs.running(task_id) if within > 0 else None
        if run is not None and reader.sees(run.task.key):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.outcome(), within)

    async def fetch_here(self, file: ImageRef) -> Fetched:
        """A large file (or one on a NAS) as its path, to be sent in chunks; a small one's bytes, read at once."""
        files = self.runs.comfy.files
        path = await files.streamed(file.model_dump())
        if path is not None:
            return Fetched(path=path)
        return Fetched(data=await read_output(files, file, None))
