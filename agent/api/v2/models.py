"""Comfy API v2's shapes, as `comfy-sdk` 0.5.0 reads them (its `comfy_low/models/_generated.py`, generated from
the v2 spec): the tests parse every answer with the SDK's own models. Times are timezone-aware, the URLs of
outputs and assets absolute, and every nullable field of a job is present, as the SDK requires."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ExtraData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key_comfy_org: str | None = None


class JobRequest(BaseModel):
    """`POST /api/v2/jobs`: the graph in API format (checked apart, for v2's own codes), labels, extra data."""

    workflow: Any = None
    metadata: Any = None
    extra_data: ExtraData | None = None


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    CANCELING = "canceling"
    CANCELED = "canceled"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def terminal(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.CANCELED, JobStatus.FAILED, JobStatus.EXPIRED)


class OutputType(StrEnum):
    IMAGE = "image"
    VIDEO = "video"
    AUDIO = "audio"
    TEXT = "text"
    FILE = "file"
    LATENT = "latent"


class JobUrls(BaseModel):
    self: str
    events: str
    cancel: str


class Progress(BaseModel):
    value: float
    nodes_done: int
    nodes_total: int
    current_node: str | None = None
    current_node_class: str | None = None
    step: int | None = None
    steps: int | None = None
    message: str | None = None


class JobError(BaseModel):
    code: str
    message: str
    node_id: str | None = None
    class_type: str | None = None
    traceback: str | None = None


class Output(BaseModel):
    node_id: str
    name: str
    type: OutputType
    content_type: str
    size_bytes: int
    id: str
    hash: str | None = None
    url: str
    url_expires_at: datetime
    job_id: str | None = None


class Asset(BaseModel):
    id: str
    hash: str | None = None
    size_bytes: int
    content_type: str
    file_path: str | None = None
    created_new: bool | None = Field(default=None, exclude_if=lambda value: value is None)  # answers to uploads
    created_at: datetime
    url: str
    url_expires_at: datetime
    job_id: str | None = None


class Job(BaseModel):
    id: str
    status: JobStatus
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    expires_at: datetime
    queue_position: int | None
    progress: Progress | None
    outputs: list[Output]
    error: JobError | None
    urls: JobUrls
    metadata: dict[str, str] = Field(default_factory=dict)


class JobSummary(BaseModel):
    """An item of `GET /api/v2/jobs`, as the SDK's `list_jobs` reads it."""

    id: str
    status: JobStatus
    create_time: datetime
    update_time: datetime
    deployment_id: str | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class JobList(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None = None


class JobWorkflow(BaseModel):
    workflow: dict[str, Any]
    format: str = "api"


class StatusEvent(BaseModel):
    status: JobStatus
    queue_position: int | None = None


class Error(BaseModel):
    code: str
    message: str
    details: dict[str, Any] | None = None


class ErrorEnvelope(BaseModel):
    error: Error
