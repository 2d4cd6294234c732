"""The workflow files, read as they are now: the image's folder (`WORKFLOWS_DIR`) and the NAS's
(`$NAS_DIR/workflows`, where a new definition needs no image rebuild; its files win over the image's of the same
name). A file is parsed again only when it changed, so a definition added or edited while the agent runs is
served at the next request, and one that is not a definition is left out (and logged once), never fatal.

A graph the editor saved is converted against the node catalog, again at most every `FRESH_FOR` seconds (a node
installed later makes a file that could not be converted good); one that cannot be is left out of the list
(logged once per try) and refused by name.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent.errors import AgentError
from agent.logs import log_event
from agent.workflows.catalog import FRESH_FOR, Catalog, api_format
from agent.workflows.definition import NAME, Definition, DefinitionError, graph_of, load_definition
from agent.workflows.editor import is_editor_graph

logger = logging.getLogger("agent.workflows")

Loaded = Definition | AgentError | None  # None: the file is no definition


class WorkflowFiles:
    def __init__(self, folders: Sequence[Path], catalog: Catalog) -> None:
        self.folders = list(folders)
        self.catalog = catalog
        self._parsed: dict[Path, tuple[int, Any]] = {}  # by file: its change time and JSON
        self._converted: dict[Path, tuple[int, float, Loaded]] = {}

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

    def _read(self, path: Path) -> tuple[int, Any] | None:
        """The file's change time and JSON, parsed once per change (None, logged, when it is not JSON); None when
        it is gone."""
        try:
            changed = path.stat().st_mtime_ns
        except OSError:
            return None
        known = self._parsed.get(path)
        if known is not None and known[0] == changed:
            return known
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            log_event(logger, "workflow.unreadable", level=logging.WARNING, file=str(path), error=exc)
            raw = None
        self._parsed[path] = (changed, raw)
        return changed, raw

    def _scan(self, only: str | None) -> dict[str, tuple[Path, int, Any]]:
        """The files as they are now (only the one named, when `only`): the folders may be a NAS, so this runs
        in a thread."""
        files = self._files()
        if only is not None:
            files = {only: files[only]} if only in files else {}
        return {name: (path, *read) for name, path in files.items() if (read := self._read(path)) is not None}

    async def _load(self, only: str | None = None) -> dict[str, Loaded]:
        found: dict[str, Loaded] = {}
        now = time.monotonic()
        for name, (path, changed, raw) in (await asyncio.to_thread(self._scan, only)).items():
            known = self._converted.get(path)
            if known is None or known[0] != changed or now - known[1] >= FRESH_FOR:
                known = (changed, now, await self._definition(name, path, raw))
                self._converted[path] = known
            found[name] = known[2]
        return found

    async def _definition(self, name: str, path: Path, raw: Any) -> Loaded:
        if raw is None:
            return None
        try:
            graph = graph_of(raw)
            converted = await api_format(graph, self.catalog) if is_editor_graph(graph) else None
            return load_definition(name, raw, converted)
        except DefinitionError as exc:
            log_event(logger, "workflow.unreadable", level=logging.WARNING, file=str(path), error=exc)
            return None
        except AgentError as exc:  # not converted now: the catalog is away, or a node is missing
            log_event(logger, "workflow.unconverted", level=logging.WARNING, file=str(path), error=exc)
            return exc

    async def all(self) -> dict[str, Definition]:
        return {name: found for name, found in (await self._load()).items() if isinstance(found, Definition)}

    async def get(self, name: str) -> Definition | None:
        """The definition of that name; its conversion's error when it could not be converted."""
        loaded = (await self._load(name)).get(name)
        if isinstance(loaded, AgentError):
            raise loaded.with_traceback(None)
        return loaded
