"""The agent's own files (the web page, the contract's page), served so that a miss is a JSON 404 like every
other error: aiohttp's static route answers a missing file with an empty body of no type."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from agent.errors import NotFound


def file_in(folder: Path, name: str, headers: dict[str, str] | None = None) -> web.FileResponse:
    """`name` inside `folder` only: a path that leaves it (`..`, a link) is as absent as a missing file, and so is
    one the file system cannot even look up (a name over its length limit, a NUL byte)."""
    try:
        path = (folder / name).resolve()
        found = path.is_relative_to(folder.resolve()) and path.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        raise NotFound(f"no file {name[:100]}")
    return web.FileResponse(path, headers=headers)
