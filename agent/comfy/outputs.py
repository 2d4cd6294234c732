"""ComfyUI's output files, read from its folders where the agent knows them, else through `/view`.

The agent runs beside ComfyUI (one container on FC), so a file ComfyUI reports lies on a disk the agent sees:
reading it there saves an HTTP exchange with ComfyUI per image, on every run's path. A name is checked the way
ComfyUI's own `/view` checks it (no `..`, no absolute name, the subfolder inside the folder); a file that is not
where it should be (a node that saves elsewhere, a folder setting that does not match) is asked of `/view`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agent.comfy.client import ComfyClient
from agent.filesystems import on_local_disk

INLINE_BYTES = 1 << 20  # a smaller file on a local disk is read on the event loop: a thread hop would cost more


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


class ComfyFiles:
    """`folders`: ComfyUI's folder for each output type (`output`, `temp`) that the agent knows."""

    def __init__(self, client: ComfyClient, folders: Mapping[str, Path]) -> None:
        self.client = client
        self.folders = {kind: os.path.abspath(folder) for kind, folder in folders.items()}
        self._local: dict[str, bool] = {}  # per type, decided at its first file: where the folder lives

    def path_of(self, image: Mapping[str, Any]) -> str | None:
        """Where ComfyUI keeps the file, or None when the agent does not know or the name is unsafe."""
        kind = str(image.get("type") or "output")
        root = self.folders.get(kind)
        filename = str(image.get("filename") or "")
        if root is None or not filename or filename.startswith("/") or ".." in filename:
            return None
        folder = os.path.abspath(os.path.join(root, str(image.get("subfolder") or "")))
        if os.path.commonpath((folder, root)) != root:
            return None
        return os.path.join(folder, os.path.basename(filename))

    async def read(self, image: Mapping[str, Any]) -> bytes:
        path = self.path_of(image)
        if path is not None:
            try:
                return await self._read_file(path, str(image.get("type") or "output"))
            except OSError:
                pass  # not there (or not readable): ComfyUI knows where it put it
        return await self.client.view(dict(image))

    async def streamed(self, image: Mapping[str, Any]) -> str | None:
        """Where a file is better sent from in chunks than read whole: too large for the event loop, or on a NAS.
        None when `read` should have it (small and here, or not in the folder: ComfyUI knows where it is)."""
        path = self.path_of(image)
        if path is None:
            return None
        if self._on_local_disk(str(image.get("type") or "output")):
            try:
                return path if os.stat(path).st_size > INLINE_BYTES else None
            except OSError:
                return None
        return path if await asyncio.to_thread(os.path.isfile, path) else None

    def _on_local_disk(self, kind: str) -> bool:
        if kind not in self._local:
            self._local[kind] = on_local_disk(self.folders[kind])
        return self._local[kind]

    async def _read_file(self, path: str, kind: str) -> bytes:
        if self._on_local_disk(kind) and os.stat(path).st_size <= INLINE_BYTES:
            return _read(path)
        return await asyncio.to_thread(_read, path)
