"""The task: one run's state as every instance sees it through the store, and the seed's `TProgress` map."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.errors import InstanceLost, RequestParamsError

TASK_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,128}")
T = TypeVar("T")


LONG_STRING = 65536  # characters: a string longer than this (an input's base64) enters the hash as its own digest


def request_hash(prompt: dict[str, Any]) -> str:
    """Identifies a request, so a retried delivery of it can be told from a new request under the same id.

    A long string is hashed on its own (hashlib lets the event loop run meanwhile, so `when_long` runs this in a
    thread), never escaped by json.dumps, which holds the interpreter for the whole of a 20 MB input."""
    canonical = json.dumps(_digested(prompt), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def holds_long_text(value: Any) -> bool:
    """Whether a prompt carries a string long enough (an input's base64) to be worth a thread: below it, the hop
    to a thread costs more than the work."""
    if isinstance(value, str):
        return len(value) > LONG_STRING
    if isinstance(value, dict):
        return any(holds_long_text(item) for item in value.values())
    if isinstance(value, list):
        return any(holds_long_text(item) for item in value)
    return False


async def when_long(work: Callable[[dict[str, Any]], T], prompt: dict[str, Any]) -> T:
    """`work(prompt)`, in a worker thread when the prompt carries long text (megabytes of base64 must not hold
    the event loop), else at once."""
    return await asyncio.to_thread(work, prompt) if holds_long_text(prompt) else work(prompt)


def _digested(value: Any) -> Any:
    if isinstance(value, str) and len(value) > LONG_STRING:
        return "sha256:" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    if isinstance(value, dict):
        return {key: _digested(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_digested(item) for item in value]
    return value


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


def _unset(value: object) -> bool:
    return value is None


class ImageRef(BaseModel):
    """Where ComfyUI keeps an output image (`/view` parameters) and, once it went to the output store, where it
    is now (the store's fields are left out until then: a reply without a store keeps the seed's shape)."""

    model_config = ConfigDict(extra="ignore")

    filename: str
    subfolder: str = ""
    type: str = "output"
    url: str | None = Field(default=None, exclude_if=_unset)
    key: str | None = Field(default=None, exclude_if=_unset)
    content_type: str | None = Field(default=None, exclude_if=_unset)
    bytes: int | None = Field(default=None, exclude_if=_unset)


class FileRef(ImageRef):
    """An output file of any kind; extra fields ComfyUI reports (format, frame_rate, ...) are kept."""

    model_config = ConfigDict(extra="allow")


_FILE_LISTS = ("images", "gifs", "audio", "video", "videos", "animated_images")


class NodeOutput(BaseModel):
    """What one node reported in `executed.output`: typed where ComfyUI's shape is known, kept whole where not.

    Parsing never fails a run: entries of an unexpected shape are dropped from the typed lists only.
    """

    model_config = ConfigDict(extra="allow")

    images: list[FileRef] = Field(default_factory=list)
    gifs: list[FileRef] = Field(default_factory=list)
    audio: list[FileRef] = Field(default_factory=list)
    text: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _tolerate(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            return {}
        cleaned = dict(raw)
        for key in _FILE_LISTS:
            if key in cleaned:
                value = cleaned[key]
                cleaned[key] = [item for item in value if isinstance(item, dict) and "filename" in item] \
                    if isinstance(value, list) else []
        if "text" in cleaned:
            value = cleaned["text"]
            cleaned["text"] = [str(item) for item in (value if isinstance(value, list) else [value])]
        return cleaned

    @property
    def previews(self) -> list[FileRef]:
        return [image for image in self.images if image.type == "temp"]


def _empty(value: list[Any]) -> bool:
    return not value


class NodeProgress(BaseModel):
    """`TProgressNode`: max/value 0/0 before the node runs, 1/0 while it runs, 1/1 when done or cached, unless
    the node reports its own steps; times are Unix seconds. `files`: what the node reported outside `images`
    (audio, 3D models, a custom node's own lists), left out when there is none (the seed's shape)."""

    max: int = 0
    value: int = 0
    start: int = 0
    last_updated: int = 0
    images: list[ImageRef] = Field(default_factory=list)
    files: list[FileRef] = Field(default_factory=list, exclude_if=_empty)


Progress = dict[str, NodeProgress]
Results = dict[str, list[str]]


class ColdStartTimes(BaseModel):
    """Seconds from the instance's process start until the agent served, ComfyUI was ready, the warm-up ended
    (null when there is none)."""

    agent: float | None = None
    comfyui: float | None = None
    warmup: float | None = None


class Timings(BaseModel):
    """Seconds a run spent in each stage, set as each ends: taking its task id in the store, getting the models
    it names by URL (downloads, or waiting on another run's), preparing its inputs (downloads and uploads to
    ComfyUI), waiting in ComfyUI's queue, executing, delivering its outputs."""

    claim: float | None = None
    models: float | None = None
    inputs: float | None = None
    queue: float | None = None
    execution: float | None = None
    delivery: float | None = None
    cold_start: ColdStartTimes | None = None  # on the first task an instance ends after its cold start


class ModelSource(StrEnum):
    """How a run got a model it named by URL."""

    CACHED = "cached"  # in its folder already
    DOWNLOADED = "downloaded"  # by this run
    WAITED = "waited"  # another run or instance was downloading it


class ModelFetch(BaseModel):
    """A model a run names by URL, as far as it got: `bytes` of `total` (when known) in `seconds`."""

    node_id: str
    input: str
    folder: str
    name: str | None = None  # the file in its folder, once there
    bytes: int = 0
    total: int | None = None
    seconds: float = 0.0
    source: ModelSource | None = None  # None while it is being fetched


class WebhookEvent(StrEnum):
    STARTED = "task.started"
    SUCCEEDED = "task.succeeded"
    FAILED = "task.failed"
    CANCELED = "task.canceled"
    PROGRESS = "task.progress"  # opt-in, at most one a second


DEFAULT_WEBHOOK_EVENTS = (WebhookEvent.STARTED, WebhookEvent.SUCCEEDED, WebhookEvent.FAILED, WebhookEvent.CANCELED)


class Webhook(BaseModel):
    """Where a task's events go, and how their delivery went: what a receiver never got is on the task."""

    url: str
    events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS))
    attempts: int = 0
    last_status: int | None = None
    last_error: str | None = None
    undelivered: list[WebhookEvent] = Field(default_factory=list)


class Task(BaseModel):
    task_id: str
    status: TaskStatus = TaskStatus.QUEUED
    prompt_id: str | None = None
    created_at: float = Field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: Progress = Field(default_factory=dict)
    outputs: dict[str, NodeOutput] = Field(default_factory=dict)
    node_errors: dict[str, Any] = Field(default_factory=dict)
    error: dict[str, Any] | None = None
    owner: str = ""
    heartbeat_at: float = Field(default_factory=time.time)
    request_hash: str = ""
    timings: Timings = Field(default_factory=Timings)
    webhook: Webhook | None = None
    params: dict[str, Any] | None = None
    workflow: str | None = None  # the workflow run, `NAME@VERSION` when published
    models: list[ModelFetch] = Field(default_factory=list)  # the models it named by URL
    key: str | None = None  # the API key (its name) that made it: only that key and the admin see it
    # A task may wait outside any instance (a gateway hands runs to FC's asynchronous queue), with no owner to
    # heartbeat, until `waits_until`; past it the task reads failed with `lapse`, the error its queue left. The
    # instance that claims it writes its own record, without them.
    waits_until: float | None = None
    lapse: dict[str, Any] | None = None

    @property
    def waiting_outside(self) -> bool:
        """Recorded as waiting outside any instance, not taken by one yet (it may have ended meanwhile)."""
        return self.waits_until is not None

    def finish(self, status: TaskStatus, error: dict[str, Any] | None = None) -> None:
        self.status = status
        self.error = error
        self.finished_at = time.time()

    def stale(self, now: float, stale_after: float) -> bool:
        """Unfinished, and its owner has not written for `stale_after` seconds: that instance is gone. A task
        waiting outside has no owner yet: it is stale once its wait lapsed."""
        if self.waits_until is not None:
            return not self.status.finished and now > self.waits_until
        return not self.status.finished and now - self.heartbeat_at > stale_after

    @property
    def lived_until(self) -> float:
        """When the task was last alive: its end, or its owner's last write, or the end of its wait outside."""
        return self.finished_at or (self.waits_until if self.waits_until is not None else self.heartbeat_at)

    def expired(self, now: float, ttl: float) -> bool:
        return now - self.lived_until > ttl

    def as_seen(self, now: float, stale_after: float) -> Task:
        """The task as a reader must see it: a stale one is failed, never "running" or "queued" forever."""
        if not self.stale(now, stale_after):
            return self
        seen = self.model_copy()
        if self.waits_until is not None:
            seen.finish(TaskStatus.FAILED, self.lapse)
            seen.finished_at = self.waits_until
            return seen
        silent = round(now - self.heartbeat_at)
        seen.finish(TaskStatus.FAILED, InstanceLost(
            f"the instance running this task stopped: nothing heard from it for {silent} s",
            owner=self.owner).body())
        seen.finished_at = self.heartbeat_at
        return seen


def stored_bytes(task: Task) -> int:
    """Bytes of the task's outputs that went to the output store."""
    return sum(file.bytes or 0 for state in task.progress.values() for file in (*state.images, *state.files)
               if file.url is not None)
