"""The coalescing outbox alone: items folded into one write per interval, one write at a time and in order per
key, the last flush after the write in flight with its error for the caller, failure and recovery logged once.
Writes are held on futures the test releases, never ordered by sleeping."""

from __future__ import annotations

import asyncio
import logging

import pytest

from agent.errors import AgentError, StoreUnavailable
from agent.runs.outbox import Outbox

logger = logging.getLogger("tests.outbox")


def _listed(pending: list[int] | None, item: int) -> list[int]:
    return [*(pending or ()), item]


class Writes:
    """A write per batch, each held until the test releases it (or fails it)."""

    def __init__(self) -> None:
        self.batches: list[tuple[str, list[int]]] = []
        self.gates: list[asyncio.Future[None]] = []
        self.started = asyncio.Event()
        self.in_flight = 0
        self.most_in_flight = 0

    async def write(self, key: str, batch: list[int]) -> None:
        self.batches.append((key, batch))
        gate = asyncio.get_running_loop().create_future()
        self.gates.append(gate)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.started.set()
        try:
            await gate
        finally:
            self.in_flight -= 1

    async def next_started(self) -> None:
        await self.started.wait()
        self.started.clear()


def outbox(writes: Writes, interval: float = 0.01) -> Outbox[int, list[int]]:
    return Outbox(writes.write, _listed, interval, logger, "test")


async def test_items_put_within_an_interval_are_one_write() -> None:
    writes = Writes()
    box = outbox(writes)
    for item in (1, 2, 3):
        box.put("a", item)
    await writes.next_started()
    writes.gates[0].set_result(None)
    assert writes.batches == [("a", [1, 2, 3])]
    written = box.close("a")
    assert written is not None
    await written


async def test_a_key_writes_one_batch_at_a_time_in_order_and_the_last_flush_comes_after() -> None:
    writes = Writes()
    box = outbox(writes)
    box.put("a", 1)
    await writes.next_started()
    box.put("a", 2)  # while the first write is held: it waits, folded with what follows
    box.put("a", 3)
    written = box.close("a", 4)
    assert written is not None
    writes.gates[0].set_result(None)
    await writes.next_started()
    writes.gates[1].set_result(None)
    await written
    assert writes.batches == [("a", [1]), ("a", [2, 3, 4])] and writes.most_in_flight == 1


async def test_keys_do_not_wait_for_each_other() -> None:
    writes = Writes()
    box = outbox(writes)
    box.put("a", 1)
    box.put("b", 2)
    await writes.next_started()
    while len(writes.batches) < 2:
        await writes.next_started()
    assert sorted(writes.batches) == [("a", [1]), ("b", [2])] and writes.most_in_flight == 2
    for gate in writes.gates:
        gate.set_result(None)


async def test_the_last_flush_of_a_key_never_put_writes_its_items_at_once() -> None:
    writes = Writes()
    written = outbox(writes, interval=60.0).close("a", 7)
    assert written is not None
    await writes.next_started()
    writes.gates[0].set_result(None)
    await written
    assert writes.batches == [("a", [7])]
    assert outbox(writes).close("b") is None  # nothing to write, nothing written


async def test_a_failure_is_logged_once_and_its_recovery_once_and_the_last_one_raised(
        caplog: pytest.LogCaptureFixture) -> None:
    writes = Writes()
    box = outbox(writes)
    with caplog.at_level(logging.INFO, logger="tests.outbox"):
        for item in (1, 2):
            box.put("a", item)
            await writes.next_started()
            writes.gates[-1].set_exception(StoreUnavailable("out"))
        box.put("a", 3)
        await writes.next_started()
        writes.gates[-1].set_result(None)
        written = box.close("a", 4)
        assert written is not None
        await writes.next_started()
        writes.gates[-1].set_exception(StoreUnavailable("out again"))
        with pytest.raises(AgentError, match="out again"):
            await written
    assert [batch for _, batch in writes.batches] == [[1], [2], [3], [4]]
    logged = [record.getMessage().split()[1] for record in caplog.records]
    assert logged == ["test.write_failed", "test.write_recovered", "test.write_failed"], logged
