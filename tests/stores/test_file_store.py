"""What only the file store must show: atomic renames, nothing outside its folder, sweeping old files."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from agent.errors import RequestParamsError, StoreUnavailable
from agent.filesystems import on_local_disk
from agent.stores import Stores
from agent.stores.file import file_stores
from agent.stores.folder import SPARE_FILES
from agent.tasks.model import NodeProgress, Task, TaskStatus
from waiting import EVENTUALLY, until


def stores_at(path: Path, ttl: float = 3600, in_threads: bool | None = None) -> Stores:
    return file_stores(path, ttl, 30, in_threads=in_threads)


@pytest.mark.parametrize("bad", ["../x", "/etc/passwd", "a/b", "..", "x" * 129])
async def test_nothing_is_written_outside_the_folder(tmp_path: Path, bad: str) -> None:
    stores = stores_at(tmp_path / "tasks")
    with pytest.raises(RequestParamsError):
        await stores.records.save(Task(task_id=bad))
    with pytest.raises(RequestParamsError):
        await stores.cancels.request_cancel(bad)
    assert not [path for path in tmp_path.rglob("*") if not path.is_dir()]


@pytest.mark.parametrize("in_threads", [False, True], ids=["local-disk", "nas"])
async def test_readers_never_see_half_a_file(tmp_path: Path, in_threads: bool) -> None:
    stores = stores_at(tmp_path, in_threads=in_threads)
    store = stores.records
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
    await stores.close()
    assert not [path for path in tmp_path.iterdir() if path.name.endswith(".tmp")]


@pytest.mark.parametrize("in_threads", [False, True], ids=["local-disk", "nas"])
async def test_writes_fill_files_made_ahead_and_survive_their_sweep(tmp_path: Path, in_threads: bool) -> None:
    stores = stores_at(tmp_path, in_threads=in_threads)
    store = stores.records
    await store.save(Task(task_id="first"))

    async def all_spares() -> set[str] | None:
        names = {path.name for path in tmp_path.glob(".spare-*.tmp")}
        return names if len(names) == SPARE_FILES else None

    spares = await until(all_spares, EVENTUALLY, "the files made ahead")
    await store.save(Task(task_id="second"))
    assert len(spares - {path.name for path in tmp_path.glob(".spare-*.tmp")}) == 1  # one was filled and renamed
    for path in tmp_path.glob(".spare-*.tmp"):
        path.unlink()  # what another instance's sweep does to files it takes for orphans
    third = Task(task_id="third")
    await store.save(third)
    assert await store.get("third") == third
    await stores.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["first.json", "second.json", "third.json"]


async def test_the_end_is_one_file_and_a_poll_reads_its_record_only(tmp_path: Path) -> None:
    store = stores_at(tmp_path).records
    await store.save(Task(task_id="r"), {"9": ["iVBORw0KGgo="]})
    assert [path.name for path in tmp_path.iterdir()] == ["r.json"]
    record, results = (tmp_path / "r.json").read_bytes().split(b"\n")
    assert b"iVBOR" not in record and b"iVBOR" in results
    (tmp_path / "r.json").write_bytes(record + b"\nnot JSON: a poll that read it would fail")
    assert await store.get("r") == Task.model_validate_json(record)
    await store.save(Task(task_id="r", request_hash="again"))  # a save without results keeps none
    assert await store.get_results("r") is None


async def test_sweep_removes_expired_tasks_and_orphaned_temp_files(tmp_path: Path) -> None:
    stores = stores_at(tmp_path, ttl=60)
    store = stores.records
    old = Task(task_id="old")
    old.finish(TaskStatus.SUCCEEDED)
    old.finished_at = time.time() - 61
    await store.save(old, {"1": ["AAAA"]})
    await stores.cancels.request_cancel("old")
    await store.save(Task(task_id="fresh"))
    orphan = tmp_path / ".fresh.json.dead.tmp"
    orphan.write_text("{")
    os.utime(orphan, (time.time() - 7200, time.time() - 7200))
    recent = tmp_path / ".fresh.json.live.tmp"
    recent.write_text("{")
    (tmp_path / "read me.json").write_text("{}")  # not a task id: someone else's file in a shared folder
    (tmp_path / "broken.json").write_text("{")  # unreadable: kept for a person to look at, not counted
    assert await store.sweep() == 1
    await stores.close()  # its spare files go with it
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        ".fresh.json.live.tmp", "broken.json", "fresh.json", "read me.json"]


async def test_an_unusable_folder_is_store_unavailable(tmp_path: Path) -> None:
    store = stores_at(tmp_path / "tasks").records  # nothing is made before the first use
    (tmp_path / "tasks").write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="task folder"):
        await store.save(Task(task_id="x"))


MOUNTS = """\
overlay / overlay rw,relatime 0 0
proc /proc proc rw 0 0
/dev/vda1 /data ext4 rw 0 0
nas.example.com:/ /mnt/auto nfs4 rw,vers=4.0 0 0
/dev/vdb1 /mnt/auto/local xfs rw 0 0
fuse-oss /mnt/oss fuse.ossfs rw 0 0
"""


@pytest.mark.parametrize(("folder", "local"), [
    ("/data/tasks", True),
    ("/mnt/auto/comfyui/tasks", False),  # the NAS on FC
    ("/mnt/auto/local/tasks", True),  # the longest mount point wins
    ("/mnt/autox", True),  # a name that only starts like a mount point is not under it
    ("/mnt/oss/tasks", False),
    ("/", True),
])
def test_network_file_systems_are_worked_in_threads(tmp_path: Path, folder: str, local: bool) -> None:
    mounts = tmp_path / "mounts"
    mounts.write_text(MOUNTS)
    assert on_local_disk(folder, str(mounts)) is local


def test_without_a_mount_table_the_folder_counts_as_remote(tmp_path: Path) -> None:
    assert on_local_disk(str(tmp_path), str(tmp_path / "no-such-file")) is False
