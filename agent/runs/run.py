"""One run, from its claimed task to its end: inputs, ComfyUI, results; every change published as an event.

A run fails with one of a small set of domain outcomes (agent/errors.py); which HTTP status each becomes is
agent/api's business. A run's record (`task`) is its own, changed only here; its events carry snapshots of it
(`snapshot`), so the run replaces a part it changes (its timings, its progress map) rather than change it in
place. Its final record is what its subscribers' end gave back (a webhook's delivery record on it).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.comfy.client import ComfyClient, ComfyHTTPError, ComfyUnreachable, PromptRejected
from agent.comfy.connection import ConnectionUnavailable, EventConnection
from agent.comfy.host import ComfyHost
from agent.comfy.messages import ExecutionStarted, Message, NodeExecuted, Preview
from agent.comfy.outputs import ComfyFiles
from agent.comfy.prompt import ComfyGone, Ending, Liveness, Prompt
from agent.errors import (
    AgentError,
    Canceled,
    ComfyUICrashed,
    ComfyUIUnavailable,
    ExecutionError,
    PromptValidationError,
    RunTimeout,
)
from agent.inputs.prepare import InputPreparer
from agent.logs import log_event
from agent.models.library import Models
from agent.runs.events import (
    RunEvents,
    RunInputsFetched,
    RunModelsProgressed,
    RunOutput,
    RunPreview,
    RunProgressed,
    RunStarted,
    RunSubmitted,
)
from agent.runs.naming import with_task_names
from agent.runs.results import read_results
from agent.tasks.model import ModelFetch, ModelSource, NodeOutput, Results, Task, TaskStatus
from agent.tasks.options import RunOptions
from agent.tasks.progress import ProgressTracker, files_in

if TYPE_CHECKING:  # the store's client is loaded only where an output store is configured
    from agent.outputs.delivery import Delivery, OutputStore

logger = logging.getLogger("agent.run")


@dataclass(frozen=True)
class ComfyParts:
    """What a run reaches ComfyUI through."""

    host: ComfyHost
    client: ComfyClient
    connection: EventConnection
    inputs: InputPreparer
    files: ComfyFiles  # its output files
    models: Models  # the models folder, where models named by URL are fetched


@dataclass(frozen=True)
class RunOutcome:
    """`store_error`: the end could not be written to the store; the caller still gets the run's outcome."""

    task: Task
    results: Results | None
    store_error: str | None = None


def failure_of(ending: Ending, prompt_id: str) -> AgentError:
    details = ending.details
    where = {key: details.get(key) for key in ("node_id", "node_type")}
    if ending.outcome == "interrupted":
        return Canceled("the run was interrupted in ComfyUI", **where)
    if ending.outcome == "deleted":
        return Canceled("the prompt left ComfyUI's queue without running (deleted from the queue)",
                        prompt_id=prompt_id)
    if ending.outcome == "canceled":
        return Canceled("the run was canceled", prompt_id=prompt_id, comfyui_released=ending.released)
    if ending.outcome == "timeout":
        return RunTimeout("the run exceeded its timeout", prompt_id=prompt_id, comfyui_released=ending.released)
    return ExecutionError(
        str(details.get("exception_message", "")).strip() or "the run failed in ComfyUI", **where,
        exception_type=details.get("exception_type"), exception_message=details.get("exception_message"),
        traceback=details.get("traceback"),
    )


def _refused(exc: Exception, process: Liveness) -> AgentError:
    """Why ComfyUI did not take the prompt, in the agent's words."""
    if isinstance(exc, PromptRejected):
        return PromptValidationError(_leading_with_the_nodes(exc), node_errors=exc.body.get("node_errors", {}))
    if isinstance(exc, ComfyHTTPError):
        return PromptValidationError({"type": "comfyui_error", "message": exc.text[:2000]}, node_errors={})
    if process.exited:
        return ComfyUICrashed("ComfyUI exited before it took the prompt")
    return ComfyUIUnavailable(f"ComfyUI did not take the prompt: {exc}")


def _leading_with_the_nodes(rejected: PromptRejected) -> Any:
    """ComfyUI's error object, its `message` the refusal in a line (its own message kept as `comfyui_message`)."""
    error = rejected.body.get("error")
    if not isinstance(error, dict):
        return error
    return {**error, "message": rejected.summary(), "comfyui_message": error.get("message")}


def _canceled_early() -> Canceled:
    return Canceled("the run was canceled before ComfyUI got it", comfyui_released=True)


class Run:
    def __init__(self, task_id: str, prompt: dict[str, Any], options: RunOptions, *, owner: str,
                 timeout: float, events: RunEvents, digest: str, key: str | None = None) -> None:
        self.prompt = prompt
        self.timeout = min(options.timeout or timeout, timeout)
        self.options = options
        self.events = events
        self.tracker = ProgressTracker(prompt)
        self.task = Task(task_id=task_id, progress=self.tracker.nodes, owner=owner, request_hash=digest,
                         webhook=options.webhook and options.webhook.model_copy(deep=True), params=options.params,
                         workflow=options.workflow, key=key)
        self._comfy_prompt: Prompt | None = None
        self._delivery: Delivery | None = None
        self._preparing: asyncio.Future[dict[str, Any]] | None = None
        self._canceled = False
        self._stage_began = time.monotonic()
        self._ended: asyncio.Future[RunOutcome] = asyncio.get_running_loop().create_future()
        self._taken: asyncio.Future[RunOutcome | None] = asyncio.get_running_loop().create_future()

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def snapshot(self) -> Task:
        """The record as it is now, for an event: a shallow copy, whose parts the run never changes afterwards."""
        self.task.progress = self.tracker.snapshot()
        return self.task.model_copy()

    @property
    def ended(self) -> bool:
        return self._ended.done()

    async def outcome(self) -> RunOutcome:
        """The end, once every subscriber has settled it (the store has it)."""
        return await asyncio.shield(self._ended)

    async def taken(self) -> RunOutcome | None:
        """Once ComfyUI took the prompt (None), or the run's end when it ended before (a graph ComfyUI refused)."""
        return await asyncio.shield(self._taken)

    def cancel(self) -> None:
        """Stop the run wherever it is: its inputs' download, or its prompt in ComfyUI."""
        self._canceled = True
        if self._comfy_prompt is not None:
            self._comfy_prompt.stop("canceled")
        elif self._preparing is not None:
            self._preparing.cancel()

    async def execute(self, comfy: ComfyParts, store: OutputStore | None = None) -> RunOutcome:
        """`store`: the output store, where files go unless the run asked for base64 or nothing."""
        started = time.monotonic()
        delivery = self.options.delivery or ("url" if store is not None else "base64")
        if delivery == "url" and store is not None:
            self._delivery = store.delivery(comfy.files, self.task_id, self.options)
        deadline = asyncio.get_running_loop().time() + self.timeout
        results: Results | None = None
        log_event(logger, "run.start", self.task_id, nodes=len(self.prompt), owner=self.task.owner, key=self.task.key)
        try:
            results = await self._succeed(comfy, deadline, base64=delivery == "base64")
        except AgentError as exc:
            self._fail(exc)
        except ComfyGone as exc:
            self._fail(ComfyUICrashed(str(exc), prompt_id=self.task.prompt_id))
        except asyncio.CancelledError:
            self._fail(ComfyUICrashed("the agent stopped during the run"))
            await asyncio.shield(self._settle(None))
            raise
        except Exception as exc:  # the agent's own fault: its caller still gets an end, the log its traceback
            logger.exception("run.crashed task=%s", self.task_id)
            self._fail(AgentError(f"unexpected error in the agent: {exc.__class__.__name__}: {exc}"[:500]))
        finally:
            if self._comfy_prompt is not None:
                self._comfy_prompt.close()
            if self._delivery is not None and self.task.status is not TaskStatus.SUCCEEDED:
                self._delivery.cancel()  # what is still uploading after a failure
        outcome = await self._settle(results)
        await comfy.models.release(self.task_id)  # after the end is told: its caller never waits for it
        log_event(logger, "run.end", self.task_id, status=self.task.status.value, prompt_id=self.task.prompt_id,
                  seconds=round(time.monotonic() - started, 3), error=(self.task.error or {}).get("message"),
                  store_error=outcome.store_error)
        return outcome

    async def _succeed(self, comfy: ComfyParts, deadline: float, base64: bool) -> Results | None:
        """The run as it goes when nothing fails: inputs, ComfyUI, its files delivered; raises how it failed."""
        graph = await self._prepare(comfy)
        ending = await self._in_comfyui(comfy, graph, deadline)
        self._stage_ended("execution" if self.task.started_at else "queue")
        if ending.outcome != "success":
            raise failure_of(ending, self.task.prompt_id or "")
        if self._delivery is not None:
            self.tracker.stored(await self._delivery.finished())
        results = None
        if base64:
            results = await read_results(comfy.files, self.tracker.nodes, self._process(comfy),
                                         self.options.format, self.options.quality)
        self._stage_ended("delivery")
        self._keep_outputs()
        self.task.finish(TaskStatus.SUCCEEDED)
        return results

    async def abandon(self, error: AgentError) -> RunOutcome:
        """End a run that never began (canceled while it waited, the agent stopping)."""
        self._fail(error)
        return await self._settle(None)

    def replayed(self, task: Task, results: Results | None) -> RunOutcome:
        """A retried delivery of a task that succeeded: its stored end, nothing run."""
        outcome = RunOutcome(task, results)
        self._ended.set_result(outcome)
        return outcome

    def _process(self, comfy: ComfyParts) -> Liveness:
        return self._comfy_prompt.process if self._comfy_prompt is not None else comfy.host.current

    def _stage_ended(self, stage: str) -> None:
        """The stage that began when the last one ended (or the run began) is over: its seconds go on the task."""
        now = time.monotonic()
        self.task.timings = self.task.timings.model_copy(update={stage: round(now - self._stage_began, 4)})
        self._stage_began = now

    async def _prepare(self, comfy: ComfyParts) -> dict[str, Any]:
        self._stage_began = time.monotonic()
        self._preparing = asyncio.ensure_future(self._fetch(comfy.models, comfy.inputs))
        try:
            return await self._preparing
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._canceled and current is not None and not current.cancelling():  # our cancel, not shutdown
                raise _canceled_early() from None
            raise

    async def _fetch(self, models: Models, inputs: InputPreparer) -> dict[str, Any]:
        """The graph as ComfyUI gets it: models named by URL in their folder, inputs uploaded, both named."""
        graph, fetched = await models.resolve(self.prompt, self._models_moved, self.task_id)
        if fetched:
            self.task.models = fetched
            self._stage_ended("models")
            if any(fetch.source is not ModelSource.CACHED for fetch in fetched):  # news only when bytes came
                self.events.publish(RunModelsProgressed(task=self.snapshot(), done=True))
        prepared = await inputs.prepare(graph)
        self._stage_ended("inputs")
        if prepared.fetched_bytes:
            self.events.publish(RunInputsFetched(task=self.snapshot(), bytes=prepared.fetched_bytes))
        return prepared.graph

    def _models_moved(self, fetches: list[ModelFetch]) -> None:
        self.task.models = fetches
        self.events.publish(RunModelsProgressed(task=self.snapshot()))

    async def _in_comfyui(self, comfy: ComfyParts, graph: dict[str, Any], deadline: float) -> Ending:
        if self._canceled:
            raise _canceled_early()
        prompt = Prompt(comfy.client, comfy.connection, comfy.host.current, self._on_comfy, self.task_id)
        try:
            submitted = await prompt.submit(with_task_names(graph, self.task_id), self.options.pnginfo)
        except (PromptRejected, ComfyHTTPError, ComfyUnreachable, ConnectionUnavailable) as exc:
            raise _refused(exc, prompt.process) from exc
        self._comfy_prompt = prompt
        self.task.prompt_id, self.task.node_errors = submitted.prompt_id, submitted.node_errors
        self.events.publish(RunSubmitted(task=self.snapshot()))
        self._taken.set_result(None)
        if self._canceled:
            prompt.stop("canceled")
        timer = asyncio.get_running_loop().call_at(deadline, prompt.stop, "timeout")
        try:
            return await prompt.follow()
        finally:
            timer.cancel()

    def _on_comfy(self, event: Message) -> None:
        if isinstance(event, Preview):
            self.events.publish(RunPreview(task=self.snapshot(), node=event.node, mime=event.mime, data=event.data))
            return
        if isinstance(event, ExecutionStarted) and self.task.status is TaskStatus.QUEUED:
            self.task.status, self.task.started_at = TaskStatus.RUNNING, time.time()
            self._stage_ended("queue")
            self.events.publish(RunStarted(task=self.snapshot()))
        if self.tracker.apply(event):
            self.events.publish(RunProgressed(task=self.snapshot()))
        if isinstance(event, NodeExecuted):
            if self._delivery is not None:
                self._delivery.start(event.node, files_in(event.output))
            self.events.publish(RunOutput(task=self.snapshot(), node=event.node, output=event.output))

    def _keep_outputs(self) -> None:
        self.task.outputs = {node: NodeOutput.model_validate(output) for node, output in self.tracker.reported.items()}

    def _fail(self, error: AgentError) -> None:
        self._keep_outputs()
        self.task.finish(TaskStatus.CANCELED if isinstance(error, Canceled) else TaskStatus.FAILED, error.body())

    async def _settle(self, results: Results | None) -> RunOutcome:
        self.task, store_error = await self.events.settle(self.snapshot(), results)
        outcome = RunOutcome(self.task, results, store_error)
        if not self._ended.done():
            self._ended.set_result(outcome)
        if not self._taken.done():
            self._taken.set_result(outcome)
        return outcome
