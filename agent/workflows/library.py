"""The workflows folders, read as they are now: the image's (`WORKFLOWS_DIR`) and the NAS's
(`$NAS_DIR/workflows`, where a new definition needs no image rebuild; its files win over the image's of the same
name). A file is parsed again only when it changed, so a definition added or edited while the agent runs is
served at the next request, and one that is not a definition is left out (and logged once), never fatal."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from agent.logs import log_event
from agent.workflows.definition import NAME, Definition, DefinitionError, load_definition

logger = logging.getLogger("agent.workflows")


class Library:
    def __init__(self, folders: Sequence[Path]) -> None:
        self.folders = list(folders)
        self._parsed: dict[Path, tuple[int, Definition | None]] = {}

    def _files(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for folder in self.folders:
            try:
                names = sorted(os.listdir(folder))
            except OSError:
                continue
            for name in names:
                stem, extension = os.path.splitext(name)
                if extension == ".json" and NAME.fullmatch(stem):
                    found[stem] = folder / name
        return found

    def _load(self, name: str, path: Path) -> Definition | None:
        try:
            changed = path.stat().st_mtime_ns
        except OSError:
            return None
        known = self._parsed.get(path)
        if known is not None and known[0] == changed:
            return known[1]
        definition: Definition | None
        try:
            definition = load_definition(name, json.loads(path.read_text()))
        except (OSError, ValueError, DefinitionError) as exc:
            log_event(logger, "workflow.unreadable", level=logging.WARNING, file=str(path), error=exc)
            definition = None
        self._parsed[path] = (changed, definition)
        return definition

    def all(self) -> list[Definition]:
        return [found for name, path in self._files().items() if (found := self._load(name, path)) is not None]

    def get(self, name: str) -> Definition | None:
        path = self._files().get(name) if NAME.fullmatch(name) else None
        return self._load(name, path) if path is not None else None
