"""Runs, end to end: request → task → ComfyUI → events → progress → store → response."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.comfy.follower import Ending, Liveness
from agent.comfy.host import ComfyHost
from agent.config import Settings
from agent.errors import (
    AgentError,
    Canceled,
    ComfyUICrashed,
    ComfyUIUnavailable,
    ExecutionError,
    OutputUnavailable,
)
from agent.inputs.prepare import InputPreparer
from agent.logs import log_event
from agent.tasks.execution import Execution, RunOptions
from agent.tasks.model import ImageRef, Progress, Results, Task, TaskStatus
from agent.tasks.store import TaskStore

logger = logging.getLogger("agent.run")

RESULT_FETCHES = 8  # images fetched from ComfyUI at once for one run
RETRY_AFTER_SECONDS = 5
CANCEL_WAIT = 10.0  # a cancel request waits this long to answer with the task's end


@dataclass(frozen=True)
class RunResult:
    """`store_error`: the final state could not be written; the caller still gets the run's outcome."""

    task: Task
    results: Results | None
    store_error: str | None = None


def _error_of(ending: Ending) -> AgentError:
    details = ending.details
    where = {key: details.get(key) for key in ("node_id", "node_type")}
    if ending.outcome == "interrupted":
        return Canceled("the run was interrupted in ComfyUI", **where)
    return ExecutionError(
        str(details.get("exception_message", "")).strip() or "the run failed in ComfyUI", **where,
        exception_type=details.get("exception_type"), exception_message=details.get("exception_message"),
        traceback=details.get("traceback"),
    )


async def _exits_soon(process: Liveness, within: float = 3.0) -> bool:
    """A refused connection is usually a ComfyUI that just died, before its exit is noticed: wait for it."""
    deadline = time.monotonic() + within
    while not process.exited and time.monotonic() < deadline:  # noqa: ASYNC110 - `exited` is a flag, not an event
        await asyncio.sleep(0.05)
    return process.exited


class Runner:
    def __init__(self, host: ComfyHost, client: ComfyClient, store: TaskStore, inputs: InputPreparer,
                 settings: Settings, *, instance_id: str | None = None) -> None:
        self.host = host
        self.client = client
        self.store = store
        self.inputs = inputs
        self.settings = settings
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._active: dict[str, Execution] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self.draining = False
        self._idle = asyncio.Event()
        self._idle.set()

    async def run(self, task_id: str, prompt: dict[str, object], options: RunOptions) -> RunResult:
        started = await self.start(task_id, prompt, options)
        return started if isinstance(started, RunResult) else await self.finish(started)

    async def start(self, task_id: str, prompt: dict[str, object], options: RunOptions) -> Execution | RunResult:
        """Claim the task id while the run's socket opens and its inputs upload. Refused before anything is
        stored when ComfyUI is not up; a conflict leaves the store untouched; a retried delivery of a task
        that succeeded gets its stored result."""
        if self.draining:
            raise ComfyUIUnavailable("this instance is stopping; send the run to another one", retry_after=1)
        if not self.host.ready:
            raise ComfyUIUnavailable("ComfyUI is starting or restarting; try again shortly",
                                     retry_after=RETRY_AFTER_SECONDS)
        execution = Execution(self, task_id, prompt, options)
        try:
            replay = await self.store.claim(execution.task)
        except BaseException:
            self._abandon(execution)
            raise
        if replay is not None:
            self._abandon(execution)
            log_event(logger, "run.replayed", task_id)
            return RunResult(replay, await self.store.get_results(task_id))
        self._active[task_id] = execution
        self._idle.clear()
        return execution

    def finish_in_background(self, execution: Execution) -> None:
        self._keep(asyncio.ensure_future(self.finish(execution)))

    async def finish(self, execution: Execution) -> RunResult:
        try:
            return await self._complete(execution)
        finally:
            self._active.pop(execution.task_id, None)
            if not self._active:
                self._idle.set()
            self._keep(asyncio.ensure_future(execution.comfy.close()))  # the close handshake need not delay

    def _abandon(self, execution: Execution) -> None:
        """A run that will not happen: stop its preparation, wait for that, then close its socket."""
        execution.preparing.cancel()

        async def discard() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await execution.preparing
            await execution.comfy.close()

        self._keep(asyncio.ensure_future(discard()))

    def _keep(self, work: asyncio.Future[Any]) -> None:
        """Background work is referenced until done (the loop keeps only weak references to tasks)."""
        self._background.add(work)
        work.add_done_callback(self._background.discard)

    async def drain(self, grace: float) -> int:
        """Take no new run; wait up to `grace` seconds for the open ones. Returns how many are still open."""
        self.draining = True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._idle.wait()
        log_event(logger, "agent.drained", open_runs=len(self._active))
        return len(self._active)

    def resume(self) -> None:
        """A new initialization (FC thawing an instance it had asked to stop) takes runs again."""
        self.draining = False

    async def close(self) -> None:
        """Agent shutdown: runs still going end now (their tasks are written as failed)."""
        for work in list(self._background):
            work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._background, return_exceptions=True)

    async def _complete(self, execution: Execution) -> RunResult:
        task = execution.task
        started = time.monotonic()
        results: Results | None = None
        log_event(logger, "run.start", task.task_id, nodes=len(execution.prompt), owner=task.owner)
        watcher = asyncio.ensure_future(execution.watch(self.store.cancel_requested))
        try:
            connected, uploaded = await execution.preparing
            for failure in (connected, uploaded):
                if isinstance(failure, BaseException):
                    raise failure
            ending = await execution.comfy.execute(uploaded, execution.control, execution.on_submitted)
            if ending.outcome != "success":
                raise _error_of(ending)
            results = await self._results(execution.tracker.nodes, execution.comfy.process)
            execution.keep_outputs()
            task.finish(TaskStatus.SUCCEEDED)
        except AgentError as exc:
            execution.fail(exc)
        except asyncio.CancelledError:
            execution.fail(ComfyUICrashed("the agent stopped during the run"))
            await asyncio.shield(execution.saver.flush())
            raise
        finally:
            watcher.cancel()
        store_error = None
        try:
            await execution.saver.flush(results)
        except AgentError as exc:
            store_error = str(exc)
        log_event(logger, "run.end", task.task_id, status=task.status.value, prompt_id=task.prompt_id,
                  seconds=round(time.monotonic() - started, 3), error=(task.error or {}).get("message"),
                  store_error=store_error)
        return RunResult(task, results, store_error)

    async def cancel(self, task_id: str) -> Task:
        """Stop a task wherever it runs: at once if it runs here, else through word left in the store for its
        owner; answers with the task once it ended, or as it is after CANCEL_WAIT seconds."""
        task = await self.store.find(task_id)
        if task.status.finished:
            return task
        if task_id in self._active:
            self._active[task_id].control.cancel.set()
        else:
            await self.store.request_cancel(task_id)
        log_event(logger, "run.cancel_requested", task_id, owner=task.owner)
        deadline = time.monotonic() + CANCEL_WAIT
        while not task.status.finished and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            task = await self.store.get(task_id) or task
        return task

    async def _results(self, progress: Progress, process: Liveness) -> Results:
        """Padded base64 of every output image, fetched from ComfyUI in parallel, in the map's order."""
        gate = asyncio.Semaphore(RESULT_FETCHES)

        async def fetch(image: ImageRef) -> str:
            async with gate:
                try:
                    data = await self.client.view(image.model_dump())
                except (ComfyHTTPError, ComfyUnreachable) as exc:
                    if isinstance(exc, ComfyUnreachable) and await _exits_soon(process):
                        raise ComfyUICrashed("ComfyUI exited before the run's outputs could be read") from exc
                    raise OutputUnavailable(f"ComfyUI could not serve output {image.filename}: {exc}",
                                            image=image.model_dump()) from exc
            return base64.b64encode(data).decode("ascii")

        nodes = [(node, state.images) for node, state in progress.items() if state.images]
        encoded = await asyncio.gather(*(asyncio.gather(*(fetch(image) for image in images))
                                         for _, images in nodes))
        return {node: list(values) for (node, _), values in zip(nodes, encoded, strict=True)}
