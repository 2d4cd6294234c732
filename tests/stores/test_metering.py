"""The one metering wrapper (agent/metrics/store.py): every concern's operations count the store's own failures
under their documented labels, a caller's error is not counted, and a records helper counts through `load`."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.errors import StoreUnavailable, TaskConflict, TaskNotFound
from agent.metrics import Metrics
from agent.metrics.store import metered
from agent.stores import open_store
from agent.stores.file import file_stores
from agent.tasks.model import Task
from stores.conftest import STALE_AFTER, TTL


def failures(metrics: Metrics) -> dict[str, float]:
    return {sample.labels["operation"]: sample.value for family in metrics.store_errors.collect()
            for sample in family.samples if sample.name.endswith("_total") and sample.value}


async def test_every_operation_of_every_concern_counts_its_failures_under_its_label(tmp_path: Path) -> None:
    (tmp_path / "tasks").write_text("not a folder")  # every operation fails: StoreUnavailable
    metrics = Metrics()
    stores = metered(file_stores(tmp_path / "tasks", TTL, STALE_AFTER), metrics)
    operations = [stores.records.claim(Task(task_id="t")), stores.records.save(Task(task_id="t")),
                  stores.records.load("t"), stores.records.get_results("t"), stores.records.sweep(),
                  stores.cancels.request_cancel("t"), stores.cancels.cancels_requested(["t"]),
                  stores.log.append_events("t", [("status", {})]), stores.log.read_events("t", None, 0),
                  stores.shared.put_shared("n", b""), stores.shared.get_shared("n")]
    for operation in operations:
        with pytest.raises(StoreUnavailable):
            await operation
    with pytest.raises(StoreUnavailable):
        await stores.records.find("t")  # a helper: counted as the `load` it makes
    await stores.close()
    assert failures(metrics) == {  # the labels store_errors_total is documented with: never renamed
        "claim": 1, "save": 1, "load": 2, "get_results": 1, "sweep": 1, "request_cancel": 1, "cancels_requested": 1,
        "append_events": 1, "read_events": 1, "put_shared": 1, "get_shared": 1}


async def test_a_callers_error_is_not_counted_and_the_unmetered_concern_is_left_as_it_was() -> None:
    metrics = Metrics()
    plain = open_store("memory://", TTL, STALE_AFTER)
    stores = metered(plain, metrics)
    await stores.records.claim(Task(task_id="t"))
    with pytest.raises(TaskConflict):
        await stores.records.claim(Task(task_id="t"))
    with pytest.raises(TaskNotFound):
        await stores.records.find("never")
    assert failures(metrics) == {}
    assert "claim" not in vars(plain.records) and "claim" in vars(stores.records)
    assert await plain.records.get("t") == await stores.records.get("t")  # one backend under both
