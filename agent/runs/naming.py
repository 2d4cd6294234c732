"""ComfyUI's file names carry the task id: the submitted copy of the prompt gets the id in front of every save
node's `filename_prefix`, so instances sharing one NAS never write the same name (ComfyUI numbers files by what
it finds in the folder, and two instances find the same) and a task's files can be found by its id."""

from __future__ import annotations

from typing import Any


def task_prefix(prefix: str, task_id: str) -> str:
    """`sub/name` becomes `sub/TASKID_name`: ComfyUI takes the part before the last slash as the subfolder."""
    folder, slash, name = prefix.rpartition("/")
    return f"{folder}{slash}{task_id}_{name}"


def with_task_names(graph: dict[str, Any], task_id: str) -> dict[str, Any]:
    """The graph with each literal `filename_prefix` named for the task; the nodes changed are copies, the
    rest is shared (a linked prefix, computed by another node, is left as it is)."""
    named = dict(graph)
    for node_id, node in graph.items():
        inputs = node.get("inputs") if isinstance(node, dict) else None
        if isinstance(inputs, dict) and isinstance(inputs.get("filename_prefix"), str):
            named[node_id] = {**node, "inputs": {**inputs,
                                                 "filename_prefix": task_prefix(inputs["filename_prefix"], task_id)}}
    return named
