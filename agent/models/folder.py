"""What the models folder holds, for the models API and the workflows' model pickers: each model with its size
and where it came from (a download's record, or placed by hand), and its removal. Blocking file work: callers
run it in a worker thread."""

from __future__ import annotations

import contextlib
import shutil
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from agent.model_folders import MODEL_KINDS
from agent.models.cache import downloads, in_use, uses
from agent.models.refs import has_model_ending


class ModelEntry(BaseModel):
    """A model in its folder: `origin` `url` (downloaded by URL: its `url` without query, `sha256`, when, last
    use) or `placed` (put there by hand: never evicted)."""

    folder: str
    name: str
    bytes: int
    origin: Literal["url", "placed"]
    url: str | None = None
    sha256: str | None = None
    downloaded_at: float | None = None
    last_used: float | None = None


class ModelMissing(LookupError):
    """No such model in that folder."""


class ModelBusy(RuntimeError):
    """A run still needs the model."""


def kinds_in(folder: Path, known: tuple[str, ...] = MODEL_KINDS) -> list[str]:
    """The model folders: the known ones, and any other the operator made."""
    made = [path.name for path in folder.iterdir() if path.is_dir() and not path.name.startswith(".")] \
        if folder.is_dir() else []
    return sorted(set(known) | set(made))


def names(folder: Path, kind: str) -> list[str]:
    """The models of one folder as ComfyUI names them: paths relative to it, subfolders included."""
    base = folder / kind
    if not base.is_dir():
        return []
    return sorted(str(path.relative_to(base)) for path in base.rglob("*")
                  if path.is_file() and has_model_ending(path.name))


def entries(folder: Path, kind: str | None = None) -> list[ModelEntry]:
    downloaded = {(model.kind, model.path.name): model for model in downloads(folder)}
    found = []
    for each in [kind] if kind else kinds_in(folder):
        for name in names(folder, each):
            size = (folder / each / name).stat().st_size
            model = downloaded.get((each, name))
            if model is None:
                found.append(ModelEntry(folder=each, name=name, bytes=size, origin="placed"))
            else:
                found.append(ModelEntry(folder=each, name=name, bytes=size, origin="url", url=model.url,
                                        sha256=model.sha256, downloaded_at=model.downloaded_at,
                                        last_used=model.last_used))
    return found


def delete(folder: Path, kind: str, name: str) -> None:
    """Remove a model (and its download's record); refused while a run needs it."""
    base = (folder / kind).resolve()
    path = (base / name).resolve()
    if not path.is_relative_to(base) or not path.is_file() or not has_model_ending(path.name):
        raise ModelMissing(f"no model {name!r} in folder {kind!r}")
    model = next((model for model in downloads(folder) if model.path.resolve() == path), None)
    if model is not None and in_use(folder, model, time.time()):
        raise ModelBusy(f"a run still needs {kind}/{name}")
    path.unlink()
    if model is not None:
        with contextlib.suppress(FileNotFoundError):
            model.record.unlink()
        shutil.rmtree(uses(folder, kind, model.key), ignore_errors=True)
