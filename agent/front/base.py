"""One front for runs, like arq's `Job` handle: a surface submits a run in a mode, cancels it, reads it, and
follows its events from the store's log; it never knows whether this instance runs it or hands it off.

A submission goes through the front in order: `room` (cheap: a full instance says so before the body is read),
`admit` (what would refuse the run, then its key's limits, before anything is recorded), then `hold` (the
caller waits for the end) or `start` (the run goes on; its task and events are in the store). A request refused
once admitted is told to `withdraw`, which frees its key's place and records the refusal where a task already
waits on it.

Every task belongs to the key that made it: `read`, `owned`, `cancel` and a wait on a run answer TaskNotFound
for another key's task, on every surface, as for a task that never was.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.access.limits import Limiter
from agent.access.principal import Principal
from agent.errors import AgentError, OutputUnavailable, TaskConflict, TaskNotFound
from agent.outputs.delivery import OutputStore
from agent.runs.run import RunOutcome
from agent.stores.keys import Scope
from agent.stores.records import TaskRecords
from agent.tasks.model import ImageRef, Results, Task
from agent.tasks.options import RunOptions


class Mode(StrEnum):
    HELD = "held"  # the caller waits for the end
    BACKGROUND = "background"  # answered at once; the run goes on
    STREAMED = "streamed"  # the caller follows the run's events as they come


@dataclass(frozen=True)
class Submission:
    """A run as a surface asks for it, for `owner`. `body`, `path` and `headers` are the request as a worker
    takes it: what a hand-off forwards (and where FC's credentials for buckets come from)."""

    task_id: str
    prompt: dict[str, Any]
    options: RunOptions
    mode: Mode
    body: bytes
    path: str
    headers: Mapping[str, str]
    owner: Principal


@dataclass(frozen=True)
class Relayed:
    """A held run's answer as the instance that ran it gave it, passed on as it comes."""

    status: int
    reason: str | None
    headers: Mapping[str, str]
    body: AsyncIterator[bytes]


Held = RunOutcome | Relayed


@dataclass(frozen=True)
class Fetched:
    """Where an output's bytes are: a signed URL of the output store, a file on this machine, or the bytes."""

    url: str | None = None
    path: str | None = None
    data: bytes | None = None


class Front(ABC):
    def __init__(self, records: TaskRecords, outputs: OutputStore | None, limiter: Limiter) -> None:
        self.records = records
        self.outputs = outputs
        self.limiter = limiter

    @abstractmethod
    def room(self, mode: Mode) -> None:
        """Raise when a run in this mode cannot be taken now."""

    async def admit(self, submission: Submission) -> None:
        """Raise what would refuse the run (its owner's scope, the request, the owner's limits), before anything
        is recorded or handed on; once this returns the owner holds a place for it (`withdraw` frees it)."""
        submission.owner.require(Scope.RUN)
        await self.check(submission)
        await self.limiter.admit(submission.owner, submission.task_id)

    async def withdraw(self, submission: Submission, error: AgentError) -> None:
        """An admitted request was refused before its run began: its place is free, unless the id's own run of
        the same key holds it (a duplicate of a run still going)."""
        if not (isinstance(error, TaskConflict) and await self._going(submission.task_id, submission.owner)):
            await self.limiter.release(submission.owner.name, submission.task_id)
        await self.refused(submission.task_id, error)

    async def _going(self, task_id: str, owner: Principal) -> bool:
        task = await self.records.get(task_id)
        return task is not None and task.key == owner.name and not task.status.finished

    @abstractmethod
    async def check(self, submission: Submission) -> None:
        """Raise what this front would refuse the run for."""

    @abstractmethod
    async def refused(self, task_id: str, error: AgentError) -> None:
        """A request for `task_id` was refused before its run began."""

    @abstractmethod
    def hold(self, submission: Submission) -> AbstractAsyncContextManager[Held]:
        """Run it, the caller waiting: its end, open until the caller has read it."""

    @abstractmethod
    async def start(self, submission: Submission, wait: float = 0) -> Task:
        """Run it in the background or streamed: once this returns its task and events are in the store. With
        `wait`, up to that many seconds more for ComfyUI to take the prompt. The task as it stands then: taken,
        still waiting its turn, handed on, or ended (a graph ComfyUI refused; a request that had succeeded)."""

    async def cancel(self, task_id: str, by: Principal) -> Task:
        """Stop it wherever it is: the task once it ended, or as it is after a short wait."""
        await self.owned(task_id, by)
        by.require(Scope.RUN)
        return await self.stop(task_id)

    @abstractmethod
    async def stop(self, task_id: str) -> Task:
        """`cancel`, once the caller may."""

    async def owned(self, task_id: str, reader: Principal) -> Task:
        """The task as the store has it; TaskNotFound when absent or another key's."""
        task = await self.records.find(task_id)
        if not reader.sees(task.key):
            raise TaskNotFound(f"no task {task_id}")
        return task

    async def read(self, task_id: str, reader: Principal, results: bool,
                   within: float = 0) -> tuple[Task, Results | None]:
        """The task as the store has it (TaskNotFound when absent or another key's), with its results once it
        has finished and they are asked for. `within`: seconds to wait for the end of a run this front is
        running, first."""
        await self.settled(task_id, reader, within)
        task = await self.owned(task_id, reader)
        return task, await self.records.get_results(task_id) if results and task.status.finished else None

    @abstractmethod
    async def settled(self, task_id: str, reader: Principal, within: float) -> None:
        """Once a run of `reader`'s this front runs has ended, or after `within` seconds; at once for a run
        elsewhere."""

    async def fetch(self, file: ImageRef) -> Fetched:
        """An output's bytes: from the output store where the run put it, else where this front can reach."""
        if file.key is not None and self.outputs is not None:
            try:
                return Fetched(url=await self.outputs.bucket.signed_url(file.key))
            except Exception as exc:  # the store's client raises its own kinds
                raise OutputUnavailable(f"output {file.filename} cannot be signed: {exc}"[:500]) from exc
        return await self.fetch_here(file)

    async def fetch_here(self, file: ImageRef) -> Fetched:
        """An output kept where ComfyUI wrote it: only an instance beside that ComfyUI has it."""
        raise OutputUnavailable(f"output {file.filename} stayed with the ComfyUI that made it (no output store)")
