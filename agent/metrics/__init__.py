"""Prometheus metrics (`GET /metrics`), through prometheus-client, names prefixed `comfyui_agent_`.

Each agent has its own registry (several agents live in one test process); counters follow the runs' events,
and what is a state rather than an event (ComfyUI's readiness and restarts, runs in flight) is read at each
scrape, so it can never drift from the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

PREFIX = "comfyui_agent"
RUN_SECONDS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
WAIT_SECONDS = (0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class _State(Collector):
    """Read at scrape time: ComfyUI's readiness and restarts, and the runs this instance holds."""

    def __init__(self, ready: Callable[[], bool], restarts: Callable[[], int], in_flight: Callable[[], int]) -> None:
        self.ready, self.restarts, self.in_flight = ready, restarts, in_flight

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        yield GaugeMetricFamily(f"{PREFIX}_comfyui_ready", "1 while ComfyUI answers and takes prompts",
                                value=float(self.ready()))
        yield CounterMetricFamily(f"{PREFIX}_comfyui_restarts", "ComfyUI restarts since the agent started",
                                  value=self.restarts())
        yield GaugeMetricFamily(f"{PREFIX}_runs_in_flight", "runs this instance holds (running or waiting)",
                                value=self.in_flight())


class Metrics:
    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter("runs", "runs ended, by status and error kind", ["status", "kind"],
                            namespace=PREFIX, registry=registry)
        self.run_seconds = Histogram("run_duration_seconds", "from the run's claim to its end",
                                     buckets=RUN_SECONDS, namespace=PREFIX, registry=registry)
        self.queue_seconds = Histogram("queue_wait_seconds", "time a prompt waited in ComfyUI's queue",
                                       buckets=WAIT_SECONDS, namespace=PREFIX, registry=registry)
        self.input_bytes = Counter("input_fetch_bytes", "bytes downloaded from input URLs and buckets",
                                   namespace=PREFIX, registry=registry)
        self.input_seconds = Histogram("input_fetch_seconds", "a run's input preparation, when it fetched any",
                                       buckets=WAIT_SECONDS, namespace=PREFIX, registry=registry)
        self.cold_start = Gauge("cold_start_seconds", "seconds from the process's start until the agent served, "
                                "ComfyUI was ready and the warm-up ended", ["stage"], namespace=PREFIX,
                                registry=registry)
        self.models = Counter("models", "models runs named by URL, by folder and how each was got (cached, "
                              "downloaded, waited)", ["folder", "source"], namespace=PREFIX, registry=registry)
        self.model_bytes = Counter("model_download_bytes", "bytes of models downloaded by URL",
                                   namespace=PREFIX, registry=registry)
        self.upload_bytes = Counter("output_upload_bytes", "bytes delivered to the output store",
                                    namespace=PREFIX, registry=registry)
        self.upload_seconds = Histogram("output_upload_seconds", "a run's delivery to the output store",
                                        buckets=WAIT_SECONDS, namespace=PREFIX, registry=registry)
        self.webhooks = Counter("webhook_deliveries", "webhook deliveries, by event type and outcome",
                                ["type", "outcome"], namespace=PREFIX, registry=registry)
        self.key_runs = Counter("key_runs", "runs ended, by API key name (the first 100 a process sees; later ones "
                                "as `other`) and status", ["key", "status"], namespace=PREFIX, registry=self.registry)
        self.key_gpu_seconds = Counter("key_gpu_seconds", "seconds runs executed in ComfyUI, by API key name",
                                       ["key"], namespace=PREFIX, registry=self.registry)
        self.store_errors = Counter("store_errors", "task store operations that failed, by operation",
                                    ["operation"], namespace=PREFIX, registry=registry)
        self.handoffs = Counter("handoffs", "runs a gateway handed to the GPU function, by outcome", ["outcome"],
                                namespace=PREFIX, registry=registry)
        self.streams = Gauge("event_streams_open", "event streams being served", namespace=PREFIX,
                             registry=registry)

    def watch(self, ready: Callable[[], bool], restarts: Callable[[], int], in_flight: Callable[[], int]) -> None:
        self.registry.register(_State(ready, restarts, in_flight))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
