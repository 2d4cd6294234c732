"""The task: one run's state as every instance sees it through the store, and the seed's `TProgress` map."""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from agent.errors import RequestParamsError

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")


def check_task_id(task_id: str) -> str:
    """The only gate between a caller's string and a file name or a store key."""
    if not isinstance(task_id, str) or TASK_ID_PATTERN.fullmatch(task_id) is None:
        raise RequestParamsError("task id must be 1 to 128 characters of A-Z, a-z, 0-9, '_' or '-'")
    return task_id


class TaskStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELED)


class ImageRef(BaseModel):
    """Where ComfyUI keeps an output image (`/view` parameters)."""

    model_config = ConfigDict(extra="ignore")

    filename: str
    subfolder: str = ""
    type: str = "output"


class NodeProgress(BaseModel):
    """`TProgressNode`: max/value 0/0 before the node runs, 1/0 while it runs, 1/1 when done or cached, unless
    the node reports its own steps; times are Unix seconds."""

    max: int = 0
    value: int = 0
    start: int = 0
    last_updated: int = 0
    images: list[ImageRef] = Field(default_factory=list)


Progress = dict[str, NodeProgress]
Results = dict[str, list[str]]


class Task(BaseModel):
    task_id: str
    status: TaskStatus = TaskStatus.QUEUED
    prompt_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = Field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = Field(default_factory=dict)
    node_errors: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None

    def finish(self, status: TaskStatus, error: dict[str, Any] | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = time.time()
