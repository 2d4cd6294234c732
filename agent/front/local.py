"""Runs on this instance: the run service admits, claims and runs them (agent/runs/service.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from agent.buckets.clients import Buckets
from agent.config import WebhookSettings
from agent.errors import AgentError, RequestParamsError
from agent.front.base import Front, Held, Mode, Submission
from agent.gateway.delivery import refuse_delivery
from agent.runs.run import Run
from agent.runs.service import RunService
from agent.tasks.model import Task
from agent.webhooks.address import check_webhook


class LocalFront(Front):
    def __init__(self, runs: RunService, buckets: Buckets, webhooks: WebhookSettings) -> None:
        super().__init__(runs.records)
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

    async def start(self, submission: Submission) -> None:
        await self._submit(submission)

    async def _submit(self, submission: Submission) -> Run:
        self.buckets.offer(submission.headers)  # FC's credentials of this invocation, for the run's buckets
        return await self.runs.submit(submission.task_id, submission.prompt, submission.options,
                                      background=submission.mode is Mode.BACKGROUND)

    async def cancel(self, task_id: str) -> Task:
        return await self.runs.cancel(task_id)
