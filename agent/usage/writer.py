"""The ledger's writer: a subscriber of the runs that records, as each ends and before its reply, what it used
(agent/stores/usage.py): its key, queue wait, execution (the GPU seconds), model downloads, input bytes fetched
and output bytes, and their cost at `price` a GPU-second. Recorded before the reply, so a key's next run is
checked against a quota that counts this one."""

from __future__ import annotations

import logging

from agent.access.principal import ANONYMOUS_NAME
from agent.errors import AgentError
from agent.logs import log_event
from agent.runs.events import RunEnded, RunEvent, RunInputsFetched
from agent.stores.usage import UsageEntry, UsageLedger
from agent.tasks.model import Results, Task, stored_bytes

logger = logging.getLogger("agent.usage")


def _output_bytes(task: Task, results: Results | None) -> int:
    """The output store's bytes; else the images handed back in the reply (base64, 4 characters for 3 bytes)."""
    stored = stored_bytes(task)
    if stored or results is None:
        return stored
    return sum(len(item) * 3 // 4 for items in results.values() for item in items if not item.startswith("http"))


def entry_of(task: Task, results: Results | None, input_bytes: int, price: float | None) -> UsageEntry:
    timings = task.timings
    gpu = timings.execution or 0.0
    return UsageEntry(task_id=task.task_id, key=task.key or ANONYMOUS_NAME,  # a task from before keys: nobody's
                      ended_at=task.finished_at or task.created_at, status=task.status.value,
                      queue_seconds=timings.queue or 0.0, gpu_seconds=gpu, model_seconds=timings.models or 0.0,
                      input_bytes=input_bytes,
                      output_bytes=_output_bytes(task, results), cost=None if price is None else gpu * price)


class UsageWriter:
    def __init__(self, ledger: UsageLedger, price: float | None) -> None:
        self.ledger = ledger
        self.price = price
        self._inputs: dict[str, int] = {}  # task id: bytes fetched so far (a run fetches once; kept to its end)

    def notify(self, event: RunEvent) -> None:
        if isinstance(event, RunInputsFetched):
            task_id = event.task.task_id
            self._inputs[task_id] = self._inputs.get(task_id, 0) + event.bytes

    async def settle(self, ended: RunEnded) -> None:
        """A ledger that cannot be written is logged, not the run's failure: its caller got what it asked for."""
        fetched = self._inputs.pop(ended.task.task_id, 0)
        try:
            await self.ledger.record(entry_of(ended.task, ended.results, fetched, self.price))
        except AgentError as exc:
            log_event(logger, "usage.write_failed", ended.task.task_id, level=logging.WARNING, error=exc)
