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


class Runner:
    def __init__(self, host: ComfyHost, client: ComfyClient, store: TaskStore, settings: Settings) -> None:
        self.host = host
        self.client = client
        self.store = store
        self.settings = settings

    async def run(self, task_id: str, prompt: dict[str, Any], options: RunOptions) -> RunResult:
        """Claim the task id, then run; refused before anything is stored when ComfyUI is not up."""
        if not self.host.ready:
            raise ComfyUIUnavailable("ComfyUI is starting or restarting; try again shortly",
                                     retry_after=RETRY_AFTER_SECONDS)
        tracker = ProgressTracker(prompt)
        task = Task(task_id=task_id, progress=tracker.nodes)
        await self.store.create(task)
        return await self._execute(task, tracker, prompt, options)

    async def _execute(self, task: Task, tracker: ProgressTracker, prompt: dict[str, Any],
                       options: RunOptions) -> RunResult:
        saver = TaskSaver(self.store, task)
        started = time.monotonic()
        results: Results | None = None
        log_event(logger, "run.start", task.task_id, nodes=len(prompt))

        def sink(event: Event) -> None:
            if isinstance(event, ExecutionStarted) and task.status is TaskStatus.QUEUED:
                task.status, task.started_at = TaskStatus.RUNNING, time.time()
                saver.changed()
            if tracker.apply(event):
                saver.changed()

        def submitted(prompt_id: str, node_errors: dict[str, Any]) -> None:
            task.prompt_id, task.node_errors = prompt_id, node_errors
            saver.changed()

        timeout = min(options.timeout or self.settings.run_timeout, self.settings.run_timeout)
        control = RunControl(deadline=asyncio.get_running_loop().time() + timeout)
        run = PromptRun(self.client, self.host.current, sink, self.settings.ws_stall_timeout, task.task_id)
        try:
            ending = await run.execute(prompt, control, submitted)
            task.outputs = tracker.outputs
            if ending.outcome != "success":
                raise _error_of(ending)
            results = await self._results(tracker.nodes) if options.results else None
            task.finish(TaskStatus.SUCCEEDED)
        except AgentError as exc:
            task.outputs = tracker.outputs
            task.finish(TaskStatus.CANCELED if isinstance(exc, Canceled) else TaskStatus.FAILED, exc.body())
        except asyncio.CancelledError:
            task.finish(TaskStatus.FAILED, ComfyUICrashed("the agent stopped during the run").body())
            await asyncio.shield(saver.flush())
            raise
        await saver.flush(results)
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
