"""The contract (agent/api/openapi.yaml) and the code say the same: routes, bodies, error kinds, headers, settings.

Each test fails when something exists on one side only; the fix is on whichever side is wrong.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate
from pydantic import BaseModel, ValidationError

from agent.api import keys as keys_api
from agent.api import replies
from agent.api.contract import contract
from agent.api.requests import TASK_ID_SOURCES, OptionsModel, RunRequest
from agent.api.security import ALLOWED_HEADERS, EXPOSED_HEADERS
from agent.api.statuses import STATUS_BY_KIND
from agent.api.v2 import models as v2
from agent.app import create_app
from agent.config import SETTINGS, Settings
from agent.errors import kinds
from agent.stores.keys import Limits
from agent.tasks.model import FileRef, ImageRef, NodeOutput, NodeProgress
from agent.tasks.view import TaskView
from agent.usage import report
from agent_harness import running_agent
from sync_docs import README, readme_with_tables, settings_entries

SPEC = contract()
METHODS = {"get", "put", "post", "delete", "patch", "options", "head", "trace"}

# Contract schema -> the model the code builds that body with.
MODELS: dict[str, type[BaseModel]] = {
    "Accepted": replies.Accepted, "Alive": replies.Alive, "Ready": replies.Ready,
    "Initialized": replies.Initialized, "Stopping": replies.Stopping, "WorkflowList": replies.WorkflowList,
    "Task": TaskView, "RunOptions": OptionsModel, "RunRequest": RunRequest, "TProgressNode": NodeProgress,
    "ImageRef": ImageRef, "FileRef": FileRef, "NodeOutput": NodeOutput,
    "V2Job": v2.Job, "V2JobUrls": v2.JobUrls, "V2Progress": v2.Progress, "V2JobError": v2.JobError,
    "V2Output": v2.Output, "V2JobSummary": v2.JobSummary, "V2JobList": v2.JobList, "V2JobWorkflow": v2.JobWorkflow,
    "V2JobRequest": v2.JobRequest, "V2Asset": v2.Asset, "V2Error": v2.Error, "V2ErrorEnvelope": v2.ErrorEnvelope,
    "KeyRequest": keys_api.KeyRequest, "ApiKey": keys_api.KeyView, "NewKey": keys_api.NewKey, "Me": keys_api.Me,
    "Limits": Limits, "UsageRow": report.Row, "UsageTotals": report.Totals, "UsageReport": report.Report,
}
# Fields the rendering adds to a model's dump: a node's `results` (the base64 of its images), only when asked.
ADDED_ON_RENDER = {"TProgressNode": {"results"}}
# Kinds no operation answers with: a task's stored error, and any agent path asked with another method.
NOT_AN_OPERATION_REPLY = {"InstanceLost", "MethodNotAllowed"}


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = SPEC
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _operations() -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in SPEC["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def _router_routes() -> set[tuple[str, str]]:
    app = create_app(Settings(comfyui_url="http://127.0.0.1:9", task_store="memory://"))
    found = set()
    for resource in app.router.resources():
        for route in resource:
            # ComfyUI's paths (the catch-all) are not the agent's; aiohttp adds HEAD to every GET
            if resource.canonical != "/{tail}" and (route.method != "HEAD" or "GET" not in methods(resource)):
                found.add((route.method, resource.canonical))
    return found


def methods(resource: web.AbstractResource) -> set[str]:
    return {route.method for route in resource}


def _kinds_named(schema: dict[str, Any]) -> set[str]:
    """Error kinds a response schema allows in `message` (its `const` or `enum`, through allOf)."""
    schema = _resolve(schema)
    named: set[str] = set()
    for part in schema.get("allOf", []):
        named |= _kinds_named(part)
    message = schema.get("properties", {}).get("message", {})
    if "const" in message:
        named.add(message["const"])
    named |= set(message.get("enum", []))
    return named


async def test_the_served_document_is_valid_openapi_3_1(double: str) -> None:
    async with running_agent(comfyui_url=double, agent_token="t0ken") as agent:
        response = await agent.get("/openapi.json")  # public, like /docs: the contract holds no secret
        assert response.status == 200
        served = await response.json()
    assert served["openapi"].startswith("3.1")
    validate(served)
    workflows = {path for path in served["paths"] if path not in SPEC["paths"]}
    assert workflows == {"/api/workflows/txt2img/run", "/api/workflows/img2img/run", "/api/workflows/warmup/run"}
    assert {**served, "paths": {path: spec for path, spec in served["paths"].items() if path not in workflows}} == SPEC


def test_every_route_the_router_has_is_in_the_contract_and_nothing_else() -> None:
    assert _router_routes() == {(method, path) for method, path, _ in _operations()}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_body_model_has_the_fields_of_its_schema(name: str) -> None:
    schema = SPEC["components"]["schemas"][name]
    model = MODELS[name]
    fields = {info.alias or field for field, info in model.model_fields.items()}
    assert set(schema["properties"]) == fields | ADDED_ON_RENDER.get(name, set())
    if model in (OptionsModel, RunRequest):  # what a caller must send
        assert set(schema.get("required", [])) == {field for field, info in model.model_fields.items()
                                                   if info.is_required()}
        assert schema["additionalProperties"] is False
        assert model.model_config.get("extra") == "forbid"


def test_every_error_kind_has_one_status_on_both_sides() -> None:
    documented = {kind: entry["status"] for kind, entry in SPEC["x-error-kinds"].items()}
    assert documented == STATUS_BY_KIND
    assert set(STATUS_BY_KIND) == kinds() | {"Unauthorized", "NotFound", "MethodNotAllowed", "RequestTooLarge"}
    assert set(SPEC["components"]["schemas"]["ErrorKind"]["enum"]) == set(STATUS_BY_KIND)


def test_each_response_names_only_kinds_of_its_own_status_and_every_kind_is_answered_somewhere() -> None:
    answered: set[str] = set()
    for method, path, operation in _operations():
        for status, response in operation["responses"].items():
            for content in _resolve(response).get("content", {}).values():
                for kind in _kinds_named(content["schema"]):
                    assert STATUS_BY_KIND[kind] == int(status), f"{method} {path} {status} names {kind}"
                    answered.add(kind)
    assert answered | NOT_AN_OPERATION_REPLY == set(STATUS_BY_KIND)


def test_every_503_carries_retry_after_and_every_header_is_known_to_cors() -> None:
    request_headers, response_headers = set(), set()
    for _, _, operation in _operations():
        for parameter in map(_resolve, operation.get("parameters", [])):
            if parameter["in"] == "header":
                request_headers.add(parameter["name"].lower())
        for status, response in operation["responses"].items():
            headers = _resolve(response).get("headers", {})
            response_headers |= {name.lower() for name in headers}
            if status == "503":
                assert _resolve(headers["Retry-After"])["required"] is True
    assert request_headers <= {name.strip().lower() for name in ALLOWED_HEADERS.split(",")}
    assert response_headers <= {name.strip().lower() for name in EXPOSED_HEADERS.split(",")}


def test_the_task_id_headers_are_the_ones_the_code_reads() -> None:
    run = SPEC["paths"]["/api/run"]["post"]
    task_headers = [parameter["name"] for parameter in map(_resolve, run["parameters"])
                    if parameter["in"] == "header" and parameter["schema"] == {"$ref": "#/components/schemas/TaskId"}]
    assert tuple(task_headers) == TASK_ID_SOURCES


def test_the_contract_and_the_readme_list_the_settings_and_error_kinds_as_declared() -> None:
    assert SPEC["x-settings"] == settings_entries(), "stale: run `python tests/sync_docs.py`"
    text = README.read_text()
    assert readme_with_tables(text, SPEC) == text, "README's tables are stale: run `python tests/sync_docs.py`"


def test_settings_refuse_an_unknown_field_and_declare_each_default_once() -> None:
    with pytest.raises(ValidationError, match="comfyui_urll"):
        Settings(comfyui_urll="http://127.0.0.1:8188")  # type: ignore[call-arg]  # the misspelling is the point
    assert [setting.field for setting in SETTINGS] == list(Settings.model_fields)
    for setting in SETTINGS:
        assert "default" not in setting.help.lower(), f"{setting.env[0]}: the default belongs to the field"


def test_nothing_in_the_repository_reaches_outside_it() -> None:
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        pytest.skip("not a git checkout: no list of the repository's files")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, check=True).stdout
    outside = "../" + "shared"  # spelled in two parts so this file does not find itself
    hits = [name for name in tracked.decode().split("\0")
            if name and (repo / name).is_file() and outside in (repo / name).read_text(errors="ignore")]
    assert hits == []
