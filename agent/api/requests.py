"""What a caller sends: the prompt, its options and the task id, checked before anything runs."""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any, Literal

import pydantic_core
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agent.config import check_webhook_url
from agent.errors import RequestParamsError
from agent.tasks.model import DEFAULT_WEBHOOK_EVENTS, Webhook, WebhookEvent, check_task_id
from agent.tasks.options import RunOptions
from agent.workflows.editor import is_editor_graph

TASK_ID_SOURCES = ("task-id", "x-fc-async-task-id")
_FLAG_WORDS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class OutputModel(BaseModel):
    """`OutputOptions` of the contract: how the run's files reach the caller."""

    model_config = ConfigDict(extra="forbid")

    delivery: Literal["url", "base64", "none"] | None = None
    format: Literal["original", "png", "webp", "jpeg"] = "original"
    quality: int | None = Field(default=None, ge=1, le=100)
    prefix: str = Field(default="", max_length=256, pattern=r"^[A-Za-z0-9_.=/-]*$")

    @field_validator("prefix")
    @classmethod
    def _no_climbing(cls, prefix: str) -> str:
        if ".." in prefix.split("/"):
            raise ValueError("must not hold a '..' part")
        return prefix


class WebhookModel(BaseModel):
    """`WebhookOptions` of the contract: where the run's events are sent, and which."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=2048)
    events: list[WebhookEvent] = Field(default_factory=lambda: list(DEFAULT_WEBHOOK_EVENTS), min_length=1)

    @field_validator("url")
    @classmethod
    def _plain_http(cls, url: str) -> str:
        return check_webhook_url(url)


class OptionsModel(BaseModel):
    """`RunOptions` of the contract."""

    model_config = ConfigDict(extra="forbid")

    results: bool = True
    timeout: float | None = Field(default=None, gt=0)
    output: OutputModel | None = None
    webhook: WebhookModel | None = None


class RunRequest(BaseModel):
    """The envelope of the contract: ComfyUI's own `client_id` is accepted and ignored, and of its `extra_data`
    only `extra_pnginfo` is used (what goes into the outputs' PNG metadata)."""

    model_config = ConfigDict(extra="forbid")

    prompt: dict[str, Any]
    options: dict[str, Any] | None = None
    client_id: str | None = None
    extra_data: dict[str, Any] | None = None


ENVELOPE_KEYS = frozenset(RunRequest.model_fields)


class WorkflowRunRequest(BaseModel):
    """`WorkflowRunRequest` of the contract."""

    model_config = ConfigDict(extra="forbid")

    params: dict[str, Any] = Field(default_factory=dict)
    options: dict[str, Any] | None = None


def parse_workflow_body(raw: bytes) -> WorkflowRunRequest:
    try:
        return WorkflowRunRequest.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        if exc.errors()[0]["type"] == "json_invalid":
            json_body(raw)  # raises, saying where
        raise first_problem(exc, "field") from None


def query_flag(request: web.Request, name: str, default: bool) -> bool:
    """A yes/no query value; anything but the contract's words is refused rather than guessed."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = _FLAG_WORDS.get(raw)
    if value is None:
        raise RequestParamsError(f"query {name} must be true or false (or 1 and 0, yes and no)")
    return value


def task_id_of(request: web.Request, query_names: tuple[str, ...] = ("task_id",)) -> str | None:
    """The caller's task id: header `task-id` (seed), `x-fc-async-task-id` (FC), then the query. Every id given
    is checked, not only the one that wins: a bad one is a mistake the caller should hear about."""
    given = [request.headers[name] for name in TASK_ID_SOURCES if name in request.headers]
    given += [request.query[name] for name in query_names if name in request.query]
    checked = [check_task_id(task_id) for task_id in given]
    return checked[0] if checked else None


def wants_async(request: web.Request) -> bool:
    """RFC 7240 `Prefer: respond-async`, or `?async=1`; FC's own X-Fc-Invocation-Type never counts."""
    preferences = {part.strip().lower() for value in request.headers.getall("Prefer", [])
                   for part in value.split(",")}
    return "respond-async" in preferences or query_flag(request, "async", False)


def new_task_id() -> str:
    return uuid.uuid4().hex


def _node_problem(node_id: str, node: Any) -> str | None:
    """Only the shape the agent itself relies on; what a node means is ComfyUI's to judge (and to report)."""
    if not isinstance(node, dict):
        return f"node {node_id!r} must be an object with class_type and inputs"
    if not isinstance(node.get("class_type", ""), str):  # a missing one is ComfyUI's to report, as it does
        return f"node {node_id!r}: class_type must be a string (the node's type)"
    if not isinstance(node.get("inputs", {}), dict):
        return f"node {node_id!r}: inputs must be an object"
    if not isinstance(node.get("_meta", {}), dict):
        return f"node {node_id!r}: _meta must be an object"
    return None


def _looks_like_envelope(body: dict[str, Any]) -> bool:
    prompt = body.get("prompt")
    return isinstance(prompt, dict) and "class_type" not in prompt and body.keys() <= ENVELOPE_KEYS


def check_prompt(prompt: Any) -> dict[str, Any]:
    """A prompt in the API format, or the editor's saved format (converted later, against the node catalog)."""
    if not isinstance(prompt, dict) or not prompt:
        raise RequestParamsError("the prompt must be a non-empty object of nodes (ComfyUI's API format) or a "
                                 "workflow as the ComfyUI editor saves it")
    if is_editor_graph(prompt):
        return prompt
    for node_id, node in prompt.items():
        problem = _node_problem(node_id, node)
        if problem:
            raise RequestParamsError(problem, node_id=node_id)
    return prompt


def first_problem(exc: ValidationError, prefix: str) -> RequestParamsError:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return RequestParamsError(f"{prefix} {where}: {first['msg']}")


def parse_options(raw: dict[str, Any] | None, request: web.Request, default_url: str | None) -> RunOptions:
    """The envelope's options win over the query's `results` and `timeout`; `default_url`: WEBHOOK_URL."""
    from_query: dict[str, Any] = {"results": query_flag(request, "results", True)}
    if "timeout" in request.query:
        from_query["timeout"] = request.query["timeout"]
    try:
        parsed = OptionsModel.model_validate({**from_query, **(raw or {})})
    except ValidationError as exc:
        raise first_problem(exc, "option") from None
    output = parsed.output or OutputModel()
    webhook = (Webhook(url=parsed.webhook.url, events=list(dict.fromkeys(parsed.webhook.events))) if parsed.webhook
               else Webhook(url=default_url) if default_url else None)
    return RunOptions(results=parsed.results, timeout=parsed.timeout, delivery=output.delivery,
                      prefix=output.prefix, format=output.format, quality=output.quality, webhook=webhook)


def json_body(raw: bytes) -> Any:
    """The body's JSON. Either parser holds the GIL throughout, so the event loop waits for it in whatever thread
    it runs: pydantic-core's, several times faster on a body of tens of megabytes, reads it first; json's own
    takes what that one refuses (UTF-16, a BOM, lone surrogates, deep nesting), so what is accepted, and how it
    reads, is json's."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError:
        pass
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:  # where, as an editor shows it: a caller finds the stray comma at once
        raise RequestParamsError(f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
                                 ) from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestParamsError(f"the body is not valid JSON: {exc}") from None


def parse_run_body(raw: bytes, request: web.Request, default_url: str | None) -> tuple[dict[str, Any], RunOptions]:
    """A bare prompt, or the envelope {"prompt": ..., "options": ...}; `default_url`: WEBHOOK_URL."""
    body = json_body(raw)
    if not isinstance(body, dict):
        raise RequestParamsError("the body must be a JSON object: a prompt in ComfyUI's API format")
    if not _looks_like_envelope(body):
        return check_prompt(body), parse_options(None, request, default_url)
    try:
        envelope = RunRequest.model_validate(body)
    except ValidationError as exc:
        raise first_problem(exc, "envelope field") from None
    options = parse_options(envelope.options, request, default_url)
    pnginfo = (envelope.extra_data or {}).get("extra_pnginfo")
    if pnginfo is not None and not isinstance(pnginfo, dict):
        raise RequestParamsError("envelope field extra_data.extra_pnginfo: must be an object, as ComfyUI takes it")
    return check_prompt(envelope.prompt), dataclasses.replace(options, pnginfo=pnginfo or None)
