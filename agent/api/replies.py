"""The bodies the agent answers with, as models: the contract (openapi.yaml) names each of them, and the tests
compare their fields with it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class Accepted(BaseModel):
    task_id: str
    status_url: str


class Alive(BaseModel):
    status: Literal["ok"] = "ok"


class Live(BaseModel):
    status: Literal["live"] = "live"
    restarts: int


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    restarts: int
    active_runs: int
    max_active_runs: int


class NotReady(BaseModel):
    """Why the instance takes no more work now: ComfyUI is starting, the instance is stopping, or it is full."""

    status: Literal["starting", "stopping", "full"]
    restarts: int
    active_runs: int
    max_active_runs: int


class Warmup(BaseModel):
    task_id: str
    seconds: float


class Initialized(BaseModel):
    status: Literal["ready"] = "ready"
    seconds: float
    warmup: Warmup | None = None


class Stopping(BaseModel):
    status: Literal["stopping"] = "stopping"
    drained: bool
    open_runs: int


class Example(BaseModel):
    """A workflow the page offers: `name` for the API, `title` and `description` for people."""

    name: str
    title: str
    description: str


class WorkflowList(BaseModel):
    workflows: list[Example]
