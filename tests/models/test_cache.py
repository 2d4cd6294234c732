"""The downloads within MODEL_CACHE_BYTES: least recently used first; never a model placed by hand, nor one a
run still needs; room made on a full disk."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from agent.models.cache import downloads
from agent_harness import serving
from model_server import ModelServer, safetensors
from models.test_library import Usage, checkpoint, listed, models_of

SIZE = 1 << 20
FILES = {f"{name}.safetensors": safetensors(SIZE, seed=index) for index, name in enumerate("abcd")}


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with serving(ModelServer(FILES).app()) as base:
        yield base


async def fetch(folder: Path, url: str, name: str, **more: Any) -> str:
    """One run's model, on an instance of its own."""
    models = models_of(folder, **{"model_cache_bytes": int(2.5 * SIZE), **more})
    try:
        graph, _ = await models.resolve(checkpoint(f"{url}/m/{name}.safetensors"), lambda _: None, "run")
        await models.release("run")
    finally:
        await models.close()
    return str(graph["4"]["inputs"]["ckpt_name"])


def kept(folder: Path) -> list[str]:
    return sorted(path.split("-", 1)[1] for path in listed(folder) if "-" in path)


async def test_the_least_recently_used_download_goes_first_and_a_placed_model_stays(tmp_path: Path, url: str) -> None:
    (tmp_path / "checkpoints").mkdir(parents=True)
    (tmp_path / "checkpoints" / "placed-by-hand.safetensors").write_bytes(b"\0" * (4 * SIZE))
    await fetch(tmp_path, url, "a")
    await fetch(tmp_path, url, "b")
    await fetch(tmp_path, url, "a")  # used again: now b is the least recent
    await fetch(tmp_path, url, "c")
    assert kept(tmp_path) == ["a.safetensors", "by-hand.safetensors", "c.safetensors"]
    assert [model.path.name.split("-", 1)[1] for model in downloads(tmp_path)] == ["a.safetensors", "c.safetensors"]
    assert not list((tmp_path / ".downloads" / "checkpoints").glob("*.json"))[2:]


async def test_a_model_a_run_still_needs_is_not_evicted(tmp_path: Path, url: str) -> None:
    running = models_of(tmp_path, model_cache_bytes=int(2.5 * SIZE))
    try:
        await running.resolve(checkpoint(f"{url}/m/a.safetensors"), lambda _: None, "long-run")
        await fetch(tmp_path, url, "b")
        await fetch(tmp_path, url, "c")  # on another instance, say: the mark is on the folder
        assert kept(tmp_path) == ["a.safetensors", "c.safetensors"]  # b went instead
        await running.release("long-run")
    finally:
        await running.close()
    await fetch(tmp_path, url, "d")
    assert kept(tmp_path) == ["a.safetensors", "d.safetensors"]  # a was in use until its run ended: c goes


async def test_a_full_disk_makes_room_from_the_downloads(tmp_path: Path, url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    await fetch(tmp_path, url, "a", model_cache_bytes=None)
    await fetch(tmp_path, url, "b", model_cache_bytes=None)
    capacity = _used(tmp_path) + SIZE // 2  # a disk these files nearly fill: removing one frees its bytes
    monkeypatch.setattr("shutil.disk_usage", lambda _: Usage(capacity, _used(tmp_path), capacity - _used(tmp_path)))
    await fetch(tmp_path, url, "c", model_cache_bytes=None)
    assert kept(tmp_path) == ["b.safetensors", "c.safetensors"]


def _used(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
