"""The HTTP contract: `openapi.yaml` beside this module is the source of truth for every route the agent answers
itself. It is served as `GET /openapi.json` and as a readable page at `GET /docs` (Swagger UI, vendored under
`docs/vendor/`, so nothing comes from a CDN); the tests fail when the routes, the models or the error kinds drift
from it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from aiohttp import web

from agent.api.files import file_in
from agent.api.services import S, Services, route
from agent.api.workflows import with_workflows

CONTRACT = Path(__file__).resolve().parent / "openapi.yaml"
DOCS_DIR = Path(__file__).resolve().parent / "docs"


@cache
def contract() -> dict[str, Any]:
    import yaml  # loaded when the contract is first asked for, not by every agent at its start

    spec: dict[str, Any] = yaml.safe_load(CONTRACT.read_text())
    return spec


async def openapi(request: web.Request, services: Services) -> web.Response:
    """The contract, and each workflow of the folders as they are now with its own request schema."""
    served = await with_workflows(services, contract())
    return web.Response(body=json.dumps(served, ensure_ascii=False).encode(), content_type="application/json")


async def docs(request: web.Request) -> web.FileResponse:
    return file_in(DOCS_DIR, "index.html", headers={"Cache-Control": "no-cache"})


async def docs_file(request: web.Request) -> web.FileResponse:
    return file_in(DOCS_DIR, request.match_info["file"])


def add_routes(app: web.Application, key: web.AppKey[S]) -> None:
    app.router.add_get("/openapi.json", route(key, openapi))
    app.router.add_get("/docs", docs)
    app.router.add_get("/docs/{file:.+}", docs_file)
