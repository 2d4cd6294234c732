"""The models downloaded by URL kept within `MODEL_CACHE_BYTES`: the least recently used go first; a model the
operator placed by hand (no download record) never goes, nor one a run on any instance still needs.

A run marks each model it names (`.downloads/<kind>/<key>.uses/<task id>`) before it looks for it, and removes
the mark when it ends; the marks live on the shared folder, so every instance sees every instance's runs. A mark
older than `IN_USE_FOR` is a killed instance's and no longer holds. Last use is the download record's mtime,
touched at every use (agent/models/library.py). Blocking file work: callers run it in a worker thread.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from agent.models.refs import has_model_ending

IN_USE_FOR = 6 * 3600.0  # longer than any run waits and runs (RUN_TIMEOUT's default is an hour)


@dataclass(frozen=True)
class Downloaded:
    """A model that was downloaded by URL: its file, its record, what the record says."""

    kind: str
    key: str
    path: Path
    record: Path
    bytes: int
    last_used: float
    url: str | None
    sha256: str | None
    downloaded_at: float | None


def downloads(folder: Path) -> list[Downloaded]:
    """Every downloaded model still in its folder, least recently used first."""
    found = []
    for record in sorted((folder / ".downloads").glob("*/*.json")):
        kind, key = record.parent.name, record.stem
        models = [path for path in (folder / kind).glob(f"{key}-*") if has_model_ending(path.name)]
        if not models:
            continue
        try:
            stat, facts = models[0].stat(), json.loads(record.read_text())
            used = record.stat().st_mtime
        except (OSError, ValueError):
            continue
        found.append(Downloaded(kind, key, models[0], record, stat.st_size, used, facts.get("url"),
                                facts.get("sha256"), facts.get("downloaded_at")))
    return sorted(found, key=lambda model: model.last_used)


def uses(folder: Path, kind: str, key: str) -> Path:
    return folder / ".downloads" / kind / f"{key}.uses"


def in_use(folder: Path, model: Downloaded, now: float) -> bool:
    marks = uses(folder, model.kind, model.key)
    try:
        return any(now - mark.stat().st_mtime < IN_USE_FOR for mark in marks.iterdir())
    except OSError:
        return False


def evict(folder: Path, budget: int | None, keep: tuple[str, str] | None = None, incoming: int = 0) -> list[str]:
    """Remove least recently used downloads until they take at most `budget` bytes with `incoming` more, and the
    disk has room for `incoming`; never `keep` (kind, key) nor one in use. The removed, as `kind/name`."""
    free = shutil.disk_usage(folder).free
    if budget is None and free >= incoming:
        return []  # no budget to keep and room enough: the downloads need not be read
    now = time.time()
    held = downloads(folder)
    total = sum(model.bytes for model in held)
    removed = []
    for model in held:
        over_budget = budget is not None and total + incoming > budget
        if not over_budget and free >= incoming:
            break
        if (model.kind, model.key) == keep or in_use(folder, model, now):
            continue
        with contextlib.suppress(FileNotFoundError):  # another instance removed it first
            model.path.unlink()
            removed.append(f"{model.kind}/{model.path.name}")
        with contextlib.suppress(FileNotFoundError):
            model.record.unlink()
        total, free = total - model.bytes, free + model.bytes
    return removed
