"""The agent's own files (the web page, the contract's page), served so that a miss is a JSON 404 like every
other error: aiohttp's static route answers a missing file with an empty body of no type."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from agent.api.errors import NotFound


def file_in(folder: Path, name: str, headers: dict[str, str] | None = None) -> web.FileResponse:
    """`name` inside `folder` only: a path that leaves it (`..`, a link) is as absent as a missing file."""
    path = (folder / name).resolve()
    if not path.is_relative_to(folder.resolve()) or not path.is_file():
        raise NotFound(f"no file {name}")
    return web.FileResponse(path, headers=headers)
