"""One run in flight: its task, the map its events build, the socket that brings them, and its upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from agent.comfy.events import Event, ExecutionStarted
from agent.comfy.follower import PromptRun, RunControl
from agent.errors import AgentError, Canceled
from agent.tasks.model import NodeOutput, Task, TaskStatus
from agent.tasks.progress import ProgressTracker
from agent.tasks.saver import TaskSaver

if TYPE_CHECKING:
    from agent.tasks.runner import Runner

WATCH_TICK = 1.0  # how often an owner looks for a cancel request left in the store


@dataclass(frozen=True)
class RunOptions:
    results: bool = True
    timeout: float | None = None


def request_hash(prompt: dict[str, Any]) -> str:
    """Identifies a request, so a retried delivery of it can be told from a new request under the same id."""
    canonical = json.dumps(prompt, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class Execution:
    def __init__(self, runner: Runner, task_id: str, prompt: dict[str, Any], options: RunOptions) -> None:
        settings = runner.settings
        self.prompt = prompt
        self.options = options
        self.heartbeat = settings.task_heartbeat
        self.tracker = ProgressTracker(prompt)
        self.task = Task(task_id=task_id, progress=self.tracker.nodes, owner=runner.instance_id,
                         request_hash=request_hash(prompt))
        self.saver = TaskSaver(runner.store, self.task)
        self.comfy = PromptRun(runner.client, runner.host.current, self.on_event, settings.ws_stall_timeout, task_id)
        timeout = min(options.timeout or settings.run_timeout, settings.run_timeout)
        self.control = RunControl(deadline=asyncio.get_running_loop().time() + timeout)
        self.preparing = asyncio.ensure_future(asyncio.gather(
            self.comfy.connect(), runner.inputs.prepare(prompt), return_exceptions=True))

    @property
    def task_id(self) -> str:
        return self.task.task_id

    def on_event(self, event: Event) -> None:
        if isinstance(event, ExecutionStarted) and self.task.status is TaskStatus.QUEUED:
            self.task.status, self.task.started_at = TaskStatus.RUNNING, time.time()
            self.saver.changed()
        if self.tracker.apply(event):
            self.saver.changed()

    def on_submitted(self, prompt_id: str, node_errors: dict[str, Any]) -> None:
        self.task.prompt_id, self.task.node_errors = prompt_id, node_errors
        self.saver.changed()

    def keep_outputs(self) -> None:
        self.task.outputs = {node: NodeOutput.model_validate(output) for node, output in self.tracker.outputs.items()}

    def fail(self, error: AgentError) -> None:
        self.keep_outputs()
        self.task.finish(TaskStatus.CANCELED if isinstance(error, Canceled) else TaskStatus.FAILED, error.body())

    async def watch(self, cancel_requested: Any) -> None:
        """While the run lasts: heartbeat (a write at least every `heartbeat` seconds, so readers know the
        owner lives) and cancel requests left in the store by any instance."""
        while True:
            await asyncio.sleep(min(WATCH_TICK, self.heartbeat))
            with contextlib.suppress(AgentError):  # a store outage delays a cancel, it does not stop the run
                if await cancel_requested(self.task_id):
                    self.control.cancel.set()
            if time.time() - self.saver.last_write_at >= self.heartbeat:
                self.saver.changed()
