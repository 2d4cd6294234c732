"""Workflows as endpoints: `GET /api/workflows`, `GET /api/workflows/{name}` (its parameters as JSON Schema,
model lists filled from ComfyUI) and `POST /api/workflows/{name}/run` with `{"params", "options"}`, run with
the same headers and semantics as `POST /api/run`. `POST /api/workflows` publishes a definition (a graph in
either format; parameters proposed when none are given; `?dry_run=true` shows what would be published) and
`DELETE /api/workflows/{name}` retires it."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.api.requests import (
    WorkflowRunRequest,
    check_prompt,
    first_problem,
    json_body,
    parse_options,
    parse_workflow_body,
    query_flag,
)
from agent.api.security import principal_of
from agent.api.services import Services
from agent.errors import NotFound, RequestParamsError
from agent.logs import log_event
from agent.stores.keys import Scope
from agent.tasks.options import RunOptions
from agent.workflows.catalog import Catalog, api_format, saved_as_run
from agent.workflows.choices import choices_of
from agent.workflows.definition import NAME, Definition, DefinitionError, discover, load_definition
from agent.workflows.library import Library
from agent.workflows.params import resolve

logger = logging.getLogger("agent.workflows")


def parameters_schema(definition: Definition, choices: dict[str, list[Any]]) -> dict[str, Any]:
    """The `params` a run takes, as JSON Schema: nothing else is accepted."""
    return {"type": "object", "additionalProperties": False,
            "properties": {parameter.name: parameter.json_schema(choices.get(parameter.name))
                           for parameter in definition.parameters}}


def _described(definition: Definition, choices: dict[str, list[Any]]) -> dict[str, Any]:
    return {"name": definition.name, "title": definition.title or definition.name,
            "description": definition.description, "declared": definition.declared,
            "parameters": parameters_schema(definition, choices), "version": definition.version,
            "published_at": definition.published_at, "editor": definition.editor is not None}


class PublishRequest(BaseModel):
    """A definition as the files have it, with its name; `parameters` left out: proposed from the graph."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=f"^{NAME.pattern}$")
    title: str = Field(default="", max_length=200)
    description: str = Field(default="", max_length=5000)
    graph: dict[str, Any]
    parameters: list[dict[str, Any]] | None = None


async def _definition(raw: bytes, catalog: Catalog) -> Definition:
    """The definition a publish body makes, converted and checked as a run would be; every refusal a 400."""
    try:
        body = PublishRequest.model_validate(json_body(raw))
    except ValidationError as exc:
        raise first_problem(exc, "field") from None
    graph = check_prompt(body.graph)
    converted = await api_format(graph, catalog)
    parameters = body.parameters if body.parameters is not None else [
        parameter.model_dump(exclude_none=True) for parameter in discover(converted)]
    declared = {**body.model_dump(exclude={"name"}), "parameters": parameters}
    try:
        return load_definition(body.name, declared, converted if converted is not graph else None)
    except DefinitionError as exc:
        raise RequestParamsError(f"definition: {exc}") from None


async def _choices(definition: Definition, services: Services) -> dict[str, list[Any]]:
    """Each enum's choices as ComfyUI lists them, with the models the models folder holds now."""
    return await choices_of(definition, services.catalog, services.models.folder)


def _declared(definition: Definition) -> dict[str, Any]:
    """The definition as `POST /api/workflows` takes it back: what a creator edits before publishing."""
    return {"name": definition.name, "title": definition.title, "description": definition.description,
            "graph": definition.editor or definition.graph,
            "parameters": [parameter.model_dump(exclude_none=True) for parameter in definition.parameters]}


async def publish_workflow(request: web.Request, services: Services) -> web.Response:
    dry_run = query_flag(request, "dry_run", False)  # any key may see what a graph would take (the page asks)
    if not dry_run:
        principal_of(request).require(Scope.ADMIN)
    definition = await _definition(await request.read(), services.catalog)
    choices = await _choices(definition, services)
    if dry_run:
        return web.json_response(_as_published(definition, choices))
    published = await services.workflows.publish(definition)
    log_event(logger, "workflow.published", workflow=published.reference, nodes=len(published.graph))
    return web.json_response(_as_published(published, choices), status=201,
                             headers={"Location": f"/api/workflows/{published.reference}"})


def _as_published(definition: Definition, choices: dict[str, list[Any]]) -> dict[str, Any]:
    """As `GET /api/workflows/{name}` has it (the graph it runs), and as a creator edits it (`definition`)."""
    return {**_described(definition, choices), "graph": definition.graph, "definition": _declared(definition)}


async def retire_workflow(request: web.Request, services: Services) -> web.Response:
    reference = request.match_info["name"]
    retired = await services.workflows.retire(reference)
    if not retired:
        raise NotFound(f"no published workflow {reference} in service (a workflow file is retired by removing "
                       "it)", workflow=reference)
    log_event(logger, "workflow.retired", workflow=reference, versions=retired)
    return web.json_response({"name": reference.partition("@")[0], "retired": retired})


async def named(request: web.Request, library: Library) -> Definition:
    """The workflow the path names; a 404 lists those there are, so a misspelt name is fixed at once."""
    name = request.match_info["name"]
    definition = await library.get(name)
    if definition is None:
        known = [found.name for found in await library.all()]
        raise NotFound(f"no workflow {name}; the workflows are: {', '.join(known) or 'none'}", workflow=name,
                       workflows=known)
    return definition


async def list_workflows(request: web.Request, services: Services) -> web.Response:
    return web.json_response({"workflows": [_described(definition, await _choices(definition, services))
                                            for definition in await services.workflows.all()]})


async def get_workflow(request: web.Request, services: Services) -> web.Response:
    definition = await named(request, services.workflows)
    return web.json_response({**_described(definition, await _choices(definition, services)),
                              "graph": definition.graph})


async def resolve_run(request: web.Request, services: Services, definition: Definition,
                      raw: bytes) -> tuple[dict[str, Any], RunOptions, WorkflowRunRequest]:
    """The graph a workflow run's body makes, its options with the parameters as used, and the body itself."""
    body = parse_workflow_body(raw)
    options = parse_options(body.options, request, services.settings.webhook_url)
    graph, used = resolve(definition, body.params, await _choices(definition, services))
    pnginfo = None if definition.editor is None else {
        "workflow": await saved_as_run(definition.editor, graph, services.catalog)}
    return graph, dataclasses.replace(options, params=used, pnginfo=pnginfo, workflow=definition.reference), body


async def with_workflows(services: Services, spec: dict[str, Any]) -> dict[str, Any]:
    """The contract with each workflow's own `POST /api/workflows/NAME/run`, its `params` typed."""
    generic = spec["paths"]["/api/workflows/{name}/run"]["post"]
    paths = dict(spec["paths"])
    for definition in await services.workflows.all():
        params = parameters_schema(definition, await _choices(definition, services))
        body = {"type": "object", "additionalProperties": False, "properties": {
            "params": params, "options": {"oneOf": [{"$ref": "#/components/schemas/RunOptions"}, {"type": "null"}]}}}
        paths[f"/api/workflows/{definition.name}/run"] = {"post": {
            **generic, "operationId": f"run_{definition.name}", "summary": definition.title or definition.name,
            "description": definition.description or generic["description"],
            "parameters": [parameter for parameter in generic["parameters"]
                           if parameter.get("$ref") != "#/components/parameters/WorkflowName"],
            "requestBody": {"required": False, "content": {"application/json": {"schema": body}}}}}
    return {**spec, "paths": paths}


