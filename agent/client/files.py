"""A finished task's outputs saved to a folder, named after the task and the node (`TASK_NODE_FILE`), from
their signed URLs or from the base64 the task came with. FILE is ComfyUI's name without the task id the agent
put in front of it (agent/runs/naming.py), so the id is not there twice."""

from __future__ import annotations

import asyncio
import base64
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _saved_name(task_id: str, node: str, filename: str) -> str:
    """`TASK_NODE_FILE`: unique within the folder (ComfyUI numbers a node's files), and readable."""
    return f"{task_id}_{node}_{os.path.basename(filename).removeprefix(f'{task_id}_')}"


async def save_outputs(progress: dict[str, Any], task_id: str, folder: Path,
                       fetch: Callable[[str], Awaitable[bytes]]) -> list[Path]:
    saved = []
    for node, state in progress.items():
        results = state.get("results") or []
        for index, image in enumerate(state.get("images") or []):
            if image.get("url"):
                data = await fetch(image["url"])
            elif index < len(results):
                data = base64.b64decode(results[index])
            else:
                continue
            path = folder / _saved_name(task_id, node, image["filename"])
            await asyncio.to_thread(_write, path, data)
            saved.append(path)
    return saved
