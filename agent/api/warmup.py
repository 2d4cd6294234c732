"""The warm-up: `WARMUP_WORKFLOW` run once with its defaults before the first user's run, so that run finds
ComfyUI started, the models the workflow names by URL fetched, and its models loaded in memory. FC's
initializer (`POST /initialize`) runs it before any traffic; off FC it runs as the agent starts. Either way it
runs once per instance: a second caller waits for the same outcome. It is a surface of its own, reaching runs as
the API does, and it ends the instance's cold start (agent/metrics/coldstart.py)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from pathlib import Path

from agent.api.replies import Warmup as Warmed
from agent.comfy.host import ComfyHost
from agent.config import Settings
from agent.errors import AgentError, ComfyUIUnavailable, NotFound, WarmupFailed
from agent.logs import log_event
from agent.metrics.coldstart import ColdStart
from agent.runs.service import RunService
from agent.tasks.options import RunOptions
from agent.workflows.catalog import Catalog
from agent.workflows.choices import choices_of
from agent.workflows.definition import Definition
from agent.workflows.files import WorkflowFiles
from agent.workflows.library import Library
from agent.workflows.params import resolve

logger = logging.getLogger("agent")


def _warmup_id(instance_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", f"warmup-{instance_id}")[:128]


class Warmup:
    def __init__(self, settings: Settings, host: ComfyHost, runs: RunService, workflows: Library, *,
                 catalog: Catalog, cold: ColdStart) -> None:
        self.settings = settings
        self.host = host
        self.runs = runs
        self.workflows = workflows
        self.catalog = catalog
        self.cold = cold
        self._outcome: asyncio.Future[Warmed | None] | None = None

    def start(self) -> asyncio.Future[Warmed | None]:
        """Begin it (the first call only); its budget, INITIALIZE_TIMEOUT, counts from here."""
        if self._outcome is None:
            self._outcome = asyncio.ensure_future(self._run(time.monotonic()))
        return self._outcome

    async def outcome(self) -> Warmed | None:
        """The warm-up's end (None when none is configured); raises how it failed."""
        return await asyncio.shield(self.start())

    def close(self) -> None:
        if self._outcome is not None:
            self._outcome.cancel()

    async def _run(self, started: float) -> Warmed | None:
        budget = self.settings.initialize_timeout
        if not await self.host.wait_ready(budget):
            raise ComfyUIUnavailable(f"ComfyUI did not become ready within {budget:g} s")
        self.cold.mark("comfyui")
        if self.settings.warmup_workflow is None:
            return None
        try:
            warmed = await self._warm(started, budget)
        except AgentError as exc:
            log_event(logger, "warmup.failed", level=logging.ERROR, error=exc.body())
            raise
        self.cold.mark("warmup")
        log_event(logger, "warmup.done", warmed.task_id, seconds=warmed.seconds)
        return warmed

    async def _warm(self, started: float, budget: float) -> Warmed:
        definition = await self._definition()
        graph, used = resolve(definition, {}, await choices_of(definition, self.catalog, self.settings.models_folder))
        left = max(budget - (time.monotonic() - started), 0.01)  # never zero: that would mean RUN_TIMEOUT's
        run = await self.runs.submit(_warmup_id(self.runs.instance_id), graph, RunOptions(
            results=False, timeout=left, params=used, workflow=definition.reference))
        outcome = await run.outcome()
        if outcome.task.error is not None:
            raise WarmupFailed("the warm-up failed", warmup=outcome.task.error)
        return Warmed(task_id=outcome.task.task_id, seconds=round(time.monotonic() - started, 3))

    async def _definition(self) -> Definition:
        named = self.settings.warmup_workflow or ""
        path = Path(named)
        in_a_file = await asyncio.to_thread(path.is_file)
        found = await (WorkflowFiles([path.parent], self.catalog).get(path.stem) if in_a_file
                       else self.workflows.get(named))
        if found is None:
            missing = NotFound(f"no workflow {named} to warm up with (WARMUP_WORKFLOW)", workflow=named)
            raise WarmupFailed(str(missing), warmup=missing.body())
        return found
