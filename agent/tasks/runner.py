"""One run, end to end: request → task → ComfyUI → events → progress → store → response."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass
from typing import Any

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable
from agent.comfy.events import Event, ExecutionStarted
from agent.comfy.follower import Ending, PromptRun, RunControl
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
from agent.tasks.model import ImageRef, Progress, Results, Task, TaskStatus
from agent.tasks.progress import ProgressTracker
from agent.tasks.saver import TaskSaver
from agent.tasks.store import TaskStore

logger = logging.getLogger("agent.run")

RESULT_FETCHES = 8  # images fetched from ComfyUI at once for one run
RETRY_AFTER_SECONDS = 5


@dataclass(frozen=True)
class RunOptions:
    results: bool = True
    timeout: float | None = None


@dataclass(frozen=True)
class RunResult:
    task: Task
    results: Results | None


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


class Execution:
    """One run in flight: its task, the map its events build, and the socket that brings them."""

    def __init__(self, runner: Runner, task_id: str, prompt: dict[str, Any], options: RunOptions) -> None:
        self.prompt = prompt
        self.options = options
        self.tracker = ProgressTracker(prompt)
        self.task = Task(task_id=task_id, progress=self.tracker.nodes)
        self.saver = TaskSaver(runner.store, self.task)
        self.comfy = PromptRun(runner.client, runner.host.current, self.on_event, runner.settings.ws_stall_timeout,
                               task_id)

    def on_event(self, event: Event) -> None:
        if isinstance(event, ExecutionStarted) and self.task.status is TaskStatus.QUEUED:
            self.task.status, self.task.started_at = TaskStatus.RUNNING, time.time()
            self.saver.changed()
        if self.tracker.apply(event):
            self.saver.changed()

    def on_submitted(self, prompt_id: str, node_errors: dict[str, Any]) -> None:
        self.task.prompt_id, self.task.node_errors = prompt_id, node_errors
        self.saver.changed()

    def fail(self, error: AgentError) -> None:
        self.task.outputs = self.tracker.outputs
        self.task.finish(TaskStatus.CANCELED if isinstance(error, Canceled) else TaskStatus.FAILED, error.body())


class Runner:
    def __init__(self, host: ComfyHost, client: ComfyClient, store: TaskStore, inputs: InputPreparer,
                 settings: Settings) -> None:
        self.host = host
        self.client = client
        self.store = store
        self.inputs = inputs
        self.settings = settings
        self._closing: set[asyncio.Task[None]] = set()

    async def run(self, task_id: str, prompt: dict[str, Any], options: RunOptions) -> RunResult:
        """Claim the task id while the run's socket opens and its input files are uploaded; refused before
        anything is stored when ComfyUI is not up, and without touching the store when the id belongs to a
        task still active."""
        if not self.host.ready:
            raise ComfyUIUnavailable("ComfyUI is starting or restarting; try again shortly",
                                     retry_after=RETRY_AFTER_SECONDS)
        execution = Execution(self, task_id, prompt, options)
        claimed, connected, uploaded = await asyncio.gather(
            self.store.create(execution.task), execution.comfy.connect(), self.inputs.prepare(prompt),
            return_exceptions=True)
        try:
            if isinstance(claimed, BaseException):
                raise claimed
            return await self._complete(execution, connected, uploaded)
        finally:
            self._close_later(execution.comfy)

    def _close_later(self, run: PromptRun) -> None:
        """The socket's close handshake need not delay the reply."""
        closing = asyncio.create_task(run.close())
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    def _deadline(self, options: RunOptions) -> float:
        timeout = min(options.timeout or self.settings.run_timeout, self.settings.run_timeout)
        return asyncio.get_running_loop().time() + timeout

    async def _complete(self, execution: Execution, connected: BaseException | None,
                        uploaded: dict[str, Any] | BaseException) -> RunResult:
        """`connected`, `uploaded`: what opening the socket and uploading the inputs gave (or their error)."""
        task, tracker = execution.task, execution.tracker
        started = time.monotonic()
        results: Results | None = None
        log_event(logger, "run.start", task.task_id, nodes=len(execution.prompt))
        try:
            for failure in (connected, uploaded):
                if isinstance(failure, BaseException):
                    raise failure
            assert isinstance(uploaded, dict)
            control = RunControl(deadline=self._deadline(execution.options))
            ending = await execution.comfy.execute(uploaded, control, execution.on_submitted)
            if ending.outcome != "success":
                raise _error_of(ending)
            results = await self._results(tracker.nodes) if execution.options.results else None
            task.outputs = tracker.outputs
            task.finish(TaskStatus.SUCCEEDED)
        except AgentError as exc:
            execution.fail(exc)
        except asyncio.CancelledError:
            execution.fail(ComfyUICrashed("the agent stopped during the run"))
            await asyncio.shield(execution.saver.flush())
            raise
        await execution.saver.flush(results)
        log_event(logger, "run.end", task.task_id, status=task.status.value, prompt_id=task.prompt_id,
                  seconds=round(time.monotonic() - started, 3), error=(task.error or {}).get("message"))
        return RunResult(task, results)

    async def _results(self, progress: Progress) -> Results:
        """Padded base64 of every output image, fetched from ComfyUI in parallel, in the map's order."""
        gate = asyncio.Semaphore(RESULT_FETCHES)

        async def fetch(image: ImageRef) -> str:
            async with gate:
                try:
                    data = await self.client.view(image.model_dump())
                except (ComfyHTTPError, ComfyUnreachable) as exc:
                    raise OutputUnavailable(f"ComfyUI could not serve output {image.filename}: {exc}",
                                            image=image.model_dump()) from exc
            return base64.b64encode(data).decode("ascii")

        nodes = [(node, state.images) for node, state in progress.items() if state.images]
        encoded = await asyncio.gather(*(asyncio.gather(*(fetch(image) for image in images))
                                         for _, images in nodes))
        return {node: list(values) for (node, _), values in zip(nodes, encoded, strict=True)}
