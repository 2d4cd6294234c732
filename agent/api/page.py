"""The web page at /app/ (agent/web/) and the example workflows it offers."""

from __future__ import annotations

import re
from pathlib import Path

from aiohttp import web

from agent.api.files import file_in
from agent.api.replies import Example, WorkflowList
from agent.api.security import presents_token
from agent.api.services import S, Services, route
from agent.config import Settings
from agent.errors import NotFound, RequestParamsError
from agent.workflows.definition import Definition
from agent.workflows.library import Library

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
WORKFLOW_NAME = re.compile(r"[A-Za-z0-9_.-]+\.json")


async def index(request: web.Request) -> web.FileResponse:
    return file_in(WEB_DIR, "index.html", headers={"Cache-Control": "no-cache"})


async def page_file(request: web.Request) -> web.FileResponse:
    return file_in(WEB_DIR, request.match_info["file"])


async def to_index(request: web.Request) -> web.Response:
    raise web.HTTPPermanentRedirect("app/")  # relative, so it works under any prefix


async def examples(request: web.Request, library: Library, settings: Settings) -> list[Definition]:
    """The workflows a person can set something on: a graph with no parameters (the warm-up prompt) runs the
    same every time, so the page does not offer it. The folders' are the deployer's examples, for anyone; a
    published one is a customer's graph, for the token's holders only."""
    shown = presents_token(request)
    return [definition for definition in await library.all()
            if definition.parameters and (shown or definition.version is None)]


async def workflows(request: web.Request, services: Services) -> web.Response:
    """The examples by title, for people; `name` is what the page asks the API for."""
    listed = [Example(name=definition.name, title=definition.title or definition.name,
                      description=definition.description)
              for definition in await examples(request, services.workflows, services.settings)]
    return web.json_response(WorkflowList(workflows=listed).model_dump())


async def workflow(request: web.Request, services: Services) -> web.Response:
    """The graph of a workflow, as the page edits it."""
    name = request.match_info["name"]
    if not WORKFLOW_NAME.fullmatch(name):
        raise RequestParamsError("a workflow name is a .json file name")
    definition = await services.workflows.get(name.removesuffix(".json"))
    if definition is None or (definition.version is not None and not presents_token(request)):
        known = [f"{example.name}.json" for example in await examples(request, services.workflows,
                                                                       services.settings)]
        raise NotFound(f"no example workflow {name}; the examples are: {', '.join(known) or 'none'}",
                       workflows=known)
    return web.json_response(definition.graph)


def add_routes(app: web.Application, key: web.AppKey[S]) -> None:
    app.router.add_get("/app", to_index)
    app.router.add_get("/app/", index)
    app.router.add_get("/app/workflows/", route(key, workflows))
    app.router.add_get("/app/workflows/{name}", route(key, workflow))
    app.router.add_get("/app/{file:.+}", page_file)
