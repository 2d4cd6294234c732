"""Workflows as endpoints: `GET /api/workflows`, `GET /api/workflows/{name}` (its parameters as JSON Schema,
model lists filled from ComfyUI) and `POST /api/workflows/{name}/run` with `{"params", "options"}`, run with
the same headers and semantics as `POST /api/run`."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from agent.api.requests import WorkflowRunRequest, parse_options, parse_workflow_body
from agent.api.services import Services
from agent.errors import NotFound
from agent.tasks.options import RunOptions
from agent.workflows.definition import Definition
from agent.workflows.library import Library
from agent.workflows.params import resolve


def parameters_schema(definition: Definition, choices: dict[str, list[Any]]) -> dict[str, Any]:
    """The `params` a run takes, as JSON Schema: nothing else is accepted."""
    return {"type": "object", "additionalProperties": False,
            "properties": {parameter.name: parameter.json_schema(choices.get(parameter.name))
                           for parameter in definition.parameters}}


def _described(definition: Definition, choices: dict[str, list[Any]]) -> dict[str, Any]:
    return {"name": definition.name, "title": definition.title or definition.name,
            "description": definition.description, "declared": definition.declared,
            "parameters": parameters_schema(definition, choices)}


def named(request: web.Request, library: Library) -> Definition:
    """The workflow the path names; a 404 lists those there are, so a misspelt name is fixed at once."""
    name = request.match_info["name"]
    definition = library.get(name)
    if definition is None:
        known = [found.name for found in library.all()]
        raise NotFound(f"no workflow {name}; the workflows are: {', '.join(known) or 'none'}", workflow=name,
                       workflows=known)
    return definition


async def list_workflows(request: web.Request, services: Services) -> web.Response:
    return web.json_response({"workflows": [_described(definition, await services.choices.of(definition))
                                            for definition in services.workflows.all()]})


async def get_workflow(request: web.Request, services: Services) -> web.Response:
    definition = named(request, services.workflows)
    return web.json_response({**_described(definition, await services.choices.of(definition)),
                              "graph": definition.graph})


async def resolve_run(request: web.Request, services: Services, definition: Definition,
                      raw: bytes) -> tuple[dict[str, Any], RunOptions, WorkflowRunRequest]:
    """The graph a workflow run's body makes, its options with the parameters as used, and the body itself."""
    body = parse_workflow_body(raw)
    options = parse_options(body.options, request, services.settings.webhook_url)
    graph, used = resolve(definition, body.params, await services.choices.of(definition))
    return graph, dataclasses.replace(options, params=used), body


async def with_workflows(services: Services, spec: dict[str, Any]) -> dict[str, Any]:
    """The contract with each workflow's own `POST /api/workflows/NAME/run`, its `params` typed."""
    generic = spec["paths"]["/api/workflows/{name}/run"]["post"]
    paths = dict(spec["paths"])
    for definition in services.workflows.all():
        params = parameters_schema(definition, await services.choices.of(definition))
        body = {"type": "object", "additionalProperties": False, "properties": {
            "params": params, "options": {"oneOf": [{"$ref": "#/components/schemas/RunOptions"}, {"type": "null"}]}}}
        paths[f"/api/workflows/{definition.name}/run"] = {"post": {
            **generic, "operationId": f"run_{definition.name}", "summary": definition.title or definition.name,
            "description": definition.description or generic["description"],
            "parameters": [parameter for parameter in generic["parameters"]
                           if parameter.get("$ref") != "#/components/parameters/WorkflowName"],
            "requestBody": {"required": False, "content": {"application/json": {"schema": body}}}}}
    return {**spec, "paths": paths}


