"""The runs' events as metrics: the subscriber that counts them."""

from __future__ import annotations

from agent.metrics import Metrics
from agent.runs.events import RunEnded, RunEvent, RunInputsFetched
from agent.tasks.model import ModelSource, stored_bytes

KEY_LABELS = 100  # key names a process labels its metrics with; later ones are folded into `other`
OTHER = "other"


class RunMetrics:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self._labels: set[str] = set()

    def _label(self, key: str | None) -> str:
        """The key's own label while few keys were seen, so a scraper's series stay bounded."""
        name = key or OTHER
        if name not in self._labels and len(self._labels) < KEY_LABELS:
            self._labels.add(name)
        return name if name in self._labels else OTHER

    def notify(self, event: RunEvent) -> None:
        if isinstance(event, RunInputsFetched):
            self.metrics.input_bytes.inc(event.bytes)
            if event.task.timings.inputs is not None:
                self.metrics.input_seconds.observe(event.task.timings.inputs)

    async def settle(self, ended: RunEnded) -> None:
        task, metrics = ended.task, self.metrics
        metrics.runs.labels(task.status.value, (task.error or {}).get("message", "")).inc()
        key = self._label(task.key)
        metrics.key_runs.labels(key, task.status.value).inc()
        metrics.key_gpu_seconds.labels(key).inc(task.timings.execution or 0.0)
        for fetch in task.models:
            if fetch.source is not None:
                metrics.models.labels(fetch.folder, fetch.source.value).inc()
            if fetch.source is ModelSource.DOWNLOADED:
                metrics.model_bytes.inc(fetch.bytes)
        if task.finished_at is not None:
            metrics.run_seconds.observe(max(0.0, task.finished_at - task.created_at))
        if task.timings.queue is not None:
            metrics.queue_seconds.observe(task.timings.queue)
        uploaded = stored_bytes(task)
        if uploaded:
            metrics.upload_bytes.inc(uploaded)
            metrics.upload_seconds.observe(task.timings.delivery or 0.0)
