"""The workflows an instance serves: those published through the API (`POST /api/workflows`, kept by version in
the shared store, so every instance and the gateway serve one at once) and the workflow files (agent/workflows/
files.py). A published name wins over a file of the same name while it has a version in service.

A reference is `NAME` (its newest version in service) or `NAME@VERSION` (that one, as a task records it; a
retired version is refused by name). A published version never changes, so each is parsed once.
"""

from __future__ import annotations

import json
import re
import time

from agent.errors import NotFound
from agent.stores.workflows import PublishedWorkflows
from agent.workflows.definition import NAME, Definition
from agent.workflows.files import WorkflowFiles

REFERENCE = re.compile(rf"({NAME.pattern})(?:@([1-9][0-9]{{0,8}}))?")


class Library:
    def __init__(self, files: WorkflowFiles, published: PublishedWorkflows) -> None:
        self.files = files
        self.published = published
        self._parsed: dict[tuple[str, int], Definition] = {}

    async def _version(self, name: str, version: int) -> Definition | None:
        parsed = self._parsed.get((name, version))
        if parsed is None:
            document = await self.published.read(name, version)
            if document is None:
                return None
            parsed = Definition.model_validate({**json.loads(document), "name": name, "version": version})
            self._parsed[(name, version)] = parsed
        return parsed

    async def _current(self, name: str) -> Definition | None:
        serving = [number for number, retired in (await self.published.versions(name)).items() if not retired]
        return await self._version(name, max(serving)) if serving else None

    async def get(self, reference: str) -> Definition | None:
        matched = REFERENCE.fullmatch(reference)
        if matched is None:
            return None
        name, version = matched[1], matched[2]
        if version is None:
            return await self._current(name) or await self.files.get(name)
        retired = (await self.published.versions(name)).get(int(version))
        if retired:
            current = await self._current(name)
            raise NotFound(f"workflow {reference} is retired" + (
                f"; its version in service is {current.reference}" if current is not None else ""),
                workflow=reference)
        return None if retired is None else await self._version(name, int(version))

    async def all(self) -> list[Definition]:
        """Every workflow in service, by name: the newest version of each published one, and the files."""
        found: dict[str, Definition] = await self.files.all()
        for name in await self.published.names():
            current = await self._current(name)
            if current is not None:
                found[name] = current
        return [found[name] for name in sorted(found)]

    async def publish(self, definition: Definition) -> Definition:
        """Keep it as the next version of its name; returns it with that version."""
        published = definition.model_copy(update={"published_at": time.time()})
        document = published.model_dump_json(exclude={"name", "version"})
        version = await self.published.publish(definition.name, document.encode())
        return published.model_copy(update={"version": version})

    async def retire(self, reference: str) -> list[int]:
        """Take a version out of service (`NAME@VERSION`), or every version of a name; returns those retired."""
        matched = REFERENCE.fullmatch(reference)
        versions = await self.published.versions(matched[1]) if matched is not None else {}
        chosen = [int(matched[2])] if matched is not None and matched[2] else list(versions)
        retired = [number for number in chosen if number in versions and not versions[number]]
        for number in retired:
            await self.published.retire(reference.partition("@")[0], number)
        return retired
