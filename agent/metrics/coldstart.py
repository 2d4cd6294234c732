"""An instance's cold start, measured from its process's start: the agent serving, ComfyUI ready, the warm-up
done. Told once it is over: one log line, `/metrics` (`cold_start_seconds` by stage), and the `timings` of the
first task to end after it (a reporter on the runs: agent/runs/events.py)."""

from __future__ import annotations

import logging
import os
import time

from agent.logs import log_event
from agent.metrics import Metrics
from agent.runs.events import RunEvent
from agent.tasks.model import ColdStartTimes, Task

logger = logging.getLogger("agent")


def _process_age() -> float:
    """Seconds since this process started, from the kernel's record (the interpreter's own start included);
    0 where there is no /proc."""
    try:
        with open("/proc/self/stat") as stat, open("/proc/uptime") as uptime:
            ticks = int(stat.read().rpartition(")")[2].split()[19])
            return max(0.0, float(uptime.read().split()[0]) - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return 0.0


class ColdStart:
    def __init__(self, metrics: Metrics, warms_up: bool) -> None:
        self.metrics = metrics
        self.warms_up = warms_up  # a warm-up is configured: the cold start ends with it
        self.began = time.monotonic() - _process_age()
        self.times = ColdStartTimes()
        self._told = False

    def mark(self, stage: str) -> None:
        """`agent`, `comfyui` or `warmup` is over now (the first time only: a restart of ComfyUI is no cold start)."""
        if getattr(self.times, stage) is not None:
            return
        self.times = self.times.model_copy(update={stage: round(time.monotonic() - self.began, 3)})
        self.metrics.cold_start.labels(stage).set(getattr(self.times, stage))
        if self.complete:
            log_event(logger, "coldstart", **self.times.model_dump())

    @property
    def complete(self) -> bool:
        times = self.times
        return None not in (times.agent, times.comfyui) and (times.warmup is not None or not self.warms_up)

    def notify(self, event: RunEvent) -> None:
        """A reporter hears every event; only the end's record matters here."""

    async def report(self, task: Task) -> Task:
        """The first task to end after the cold start carries it (a warm-up's own task ends before it is over)."""
        if self._told or not self.complete:
            return task
        self._told = True
        return task.model_copy(update={"timings": task.timings.model_copy(update={"cold_start": self.times})})
