"""The file store: atomic writes, nothing outside its folder, expiry, results kept apart."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from agent.errors import RequestParamsError, TaskConflict
from agent.tasks.file import FileStore
from agent.tasks.model import NodeProgress, Task, TaskStatus
from agent.tasks.store import open_store


def store_at(path: Path, ttl: int = 3600) -> FileStore:
    store = open_store(f"file://{path}", ttl)
    assert isinstance(store, FileStore)
    return store


async def test_saved_task_reads_back_whole(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    task = Task(task_id="t-1", progress={"1": NodeProgress(max=3, value=1)})
    await store.create(task)
    loaded = await store.get("t-1")
    assert loaded == task
    assert json.loads((tmp_path / "t-1.json").read_text())["status"] == "queued"


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", "a\0b", "x" * 129, "", "..", "a.json", "é"])
async def test_ids_that_could_leave_the_folder_are_refused(tmp_path: Path, bad: str) -> None:
    store = store_at(tmp_path / "tasks")
    with pytest.raises(RequestParamsError):
        await store.save(Task(task_id=bad))
    with pytest.raises(RequestParamsError):
        await store.get(bad)
    assert [path.name for path in tmp_path.rglob("*")] == ["tasks"]


async def test_readers_never_see_half_a_file(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    big = Task(task_id="t", progress={str(i): NodeProgress(value=i) for i in range(3000)})
    await store.save(big)

    async def reader() -> int:
        seen = 0
        for _ in range(200):
            task = await store.get("t")
            assert task is not None and len(task.progress) == 3000
            seen += 1
        return seen

    async def writer() -> None:
        for value in range(200):
            big.progress["0"].value = value
            await store.save(big)

    results = await asyncio.gather(reader(), writer(), reader())
    assert results[0] == results[2] == 200
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


async def test_active_task_id_conflicts_and_finished_one_is_replaced(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    first = Task(task_id="same")
    await store.create(first)
    with pytest.raises(TaskConflict):
        await store.create(Task(task_id="same"))
    first.finish(TaskStatus.FAILED, {"message": "Timeout"})
    await store.save(first, {"1": ["AAAA"]})
    await store.create(Task(task_id="same"))
    loaded = await store.get("same")
    assert loaded is not None and loaded.status is TaskStatus.QUEUED
    assert await store.get_results("same") is None


async def test_finished_tasks_expire_after_the_ttl(tmp_path: Path) -> None:
    store = store_at(tmp_path, ttl=60)
    old = Task(task_id="old")
    old.finish(TaskStatus.SUCCEEDED)
    old.finished_at = time.time() - 61
    await store.save(old, {"1": ["AAAA"]})
    running = Task(task_id="running", created_at=time.time() - 10_000)
    await store.save(running)
    assert await store.get("old") is None
    assert not (tmp_path / "old.json").exists() and not (tmp_path / "old.results.json").exists()
    assert await store.get("running") is not None


async def test_results_live_apart_from_the_task_record(tmp_path: Path) -> None:
    store = store_at(tmp_path)
    await store.save(Task(task_id="r"), {"9": ["iVBORw0KGgo="]})
    assert "iVBOR" not in (tmp_path / "r.json").read_text()
    assert await store.get_results("r") == {"9": ["iVBORw0KGgo="]}
