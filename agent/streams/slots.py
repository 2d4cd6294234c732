"""How many event streams this instance serves at once, against `MAX_EVENT_STREAMS`: each one reads the store
(polls a file, or holds a Redis connection), so an instance must not take them without bound."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Gauge

from agent.errors import Overloaded

RETRY_AFTER_FULL = 5


class StreamSlots:
    """How many streams this instance serves, against `MAX_EVENT_STREAMS`."""

    def __init__(self, limit: int, gauge: Gauge) -> None:
        self.limit = limit
        self.gauge = gauge
        self.open = 0

    @contextmanager
    def taken(self) -> Iterator[None]:
        if self.open >= self.limit:
            raise Overloaded(f"this instance serves {self.limit} event streams, as many as it takes "
                             "(MAX_EVENT_STREAMS); try again shortly, or poll GET /api/tasks/{id}",
                             retry_after=RETRY_AFTER_FULL)
        self.open += 1
        self.gauge.inc()
        try:
            yield
        finally:
            self.open -= 1
            self.gauge.dec()
