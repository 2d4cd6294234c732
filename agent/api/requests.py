"""What a caller sends: the prompt, its options and the task id, checked before anything runs."""

from __future__ import annotations

import json
import uuid
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import RequestParamsError
from agent.tasks.execution import RunOptions
from agent.tasks.model import check_task_id

TASK_ID_SOURCES = ("task-id", "x-fc-async-task-id")
ENVELOPE_KEYS = {"prompt", "options", "client_id", "extra_data"}


class OptionsModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    results: bool = True
    timeout: float | None = Field(default=None, gt=0)


def task_id_of(request: web.Request, query_names: tuple[str, ...] = ("task_id",)) -> str | None:
    """The caller's task id: header `task-id` (seed), `x-fc-async-task-id` (FC), then the query."""
    for header in TASK_ID_SOURCES:
        if header in request.headers:
            return check_task_id(request.headers[header])
    for name in query_names:
        if name in request.query:
            return check_task_id(request.query[name])
    return None


def wants_async(request: web.Request) -> bool:
    """RFC 7240 `Prefer: respond-async`, or `?async=1`; FC's own X-Fc-Invocation-Type never counts."""
    preferences = {part.strip().lower() for value in request.headers.getall("Prefer", [])
                   for part in value.split(",")}
    return "respond-async" in preferences or request.query.get("async", "").lower() in {"1", "true", "yes"}


def new_task_id() -> str:
    return uuid.uuid4().hex


def _node_problem(node_id: str, node: Any) -> str | None:
    """Only the shape the agent itself relies on; what a node means is ComfyUI's to judge (and to report)."""
    if not isinstance(node, dict):
        return f"node {node_id!r} must be an object with class_type and inputs"
    if not isinstance(node.get("inputs", {}), dict):
        return f"node {node_id!r}: inputs must be an object"
    return None


def _looks_like_envelope(body: dict[str, Any]) -> bool:
    prompt = body.get("prompt")
    return isinstance(prompt, dict) and "class_type" not in prompt and set(body) <= ENVELOPE_KEYS


def check_prompt(prompt: Any) -> dict[str, Any]:
    if not isinstance(prompt, dict) or not prompt:
        raise RequestParamsError("the prompt must be a non-empty object of nodes (ComfyUI's API format)")
    for node_id, node in prompt.items():
        problem = _node_problem(node_id, node)
        if problem:
            raise RequestParamsError(problem, node_id=node_id)
    return prompt


def _options(raw: Any, query: dict[str, str]) -> RunOptions:
    if not isinstance(raw or {}, dict):
        raise RequestParamsError("options must be an object")
    merged = {**{key: query[key] for key in ("results", "timeout") if key in query}, **(raw or {})}
    try:
        parsed = OptionsModel.model_validate(merged)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RequestParamsError(f"option {where}: {first['msg']}") from None
    return RunOptions(results=parsed.results, timeout=parsed.timeout)


def parse_run_body(raw: bytes, query: dict[str, str]) -> tuple[dict[str, Any], RunOptions]:
    """A bare prompt, or the envelope {"prompt": ..., "options": ...}."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise RequestParamsError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise RequestParamsError("the body must be a JSON object: a prompt in ComfyUI's API format")
    if _looks_like_envelope(body):
        return check_prompt(body["prompt"]), _options(body.get("options"), query)
    return check_prompt(body), _options(None, query)
