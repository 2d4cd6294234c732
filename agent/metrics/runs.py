"""The runs' events as metrics: the subscriber that counts them."""

from __future__ import annotations

from agent.metrics import Metrics
from agent.runs.events import RunEnded, RunEvent, RunInputsFetched
from agent.tasks.model import ModelSource, Task


def _stored_bytes(task: Task) -> int:
    return sum(file.bytes or 0 for state in task.progress.values() for file in (*state.images, *state.files)
               if file.url is not None)


class RunMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def notify(self, event: RunEvent) -> None:
        if isinstance(event, RunInputsFetched):
            self.metrics.input_bytes.inc(event.bytes)
            if event.task.timings.inputs is not None:
                self.metrics.input_seconds.observe(event.task.timings.inputs)

    async def settle(self, ended: RunEnded) -> None:
        task, metrics = ended.task, self.metrics
        metrics.runs.labels(task.status.value, (task.error or {}).get("message", "")).inc()
        for fetch in task.models:
            if fetch.source is not None:
                metrics.models.labels(fetch.folder, fetch.source.value).inc()
            if fetch.source is ModelSource.DOWNLOADED:
                metrics.model_bytes.inc(fetch.bytes)
        if task.finished_at is not None:
            metrics.run_seconds.observe(max(0.0, task.finished_at - task.created_at))
        if task.timings.queue is not None:
            metrics.queue_seconds.observe(task.timings.queue)
        uploaded = _stored_bytes(task)
        if uploaded:
            metrics.upload_bytes.inc(uploaded)
            metrics.upload_seconds.observe(task.timings.delivery or 0.0)
