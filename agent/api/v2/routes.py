"""Where Comfy API v2 lives on every app (a worker and a gateway alike): under `/api/v2/`, whose failures the
error middleware answers in v2's envelope (agent/api/v2/errors.py)."""

from __future__ import annotations

from aiohttp import web

from agent.api.security import needs
from agent.api.services import S, route
from agent.api.v2 import assets, events, jobs
from agent.stores.keys import Scope

PREFIX = "/api/v2/"
ASSET = "/api/v2/assets/{asset_id:(?!from-hash$)[^/]+}"  # `from-hash` is a route of its own, not an asset's id


async def health(_: web.Request) -> web.Response:
    """Public, as in Comfy's own server: whether this service answers, not whether a GPU is up."""
    return web.json_response({"status": "healthy"})


def add_routes(app: web.Application, key: web.AppKey[S]) -> None:
    app.router.add_get("/api/v2/health", health)
    app.router.add_post("/api/v2/jobs", route(key, jobs.submit))
    app.router.add_get("/api/v2/jobs", route(key, jobs.list_jobs))
    app.router.add_get("/api/v2/jobs/{job_id}", route(key, jobs.get_job))
    app.router.add_get("/api/v2/jobs/{job_id}/workflow", route(key, jobs.get_workflow))
    app.router.add_post("/api/v2/jobs/{job_id}/cancel", route(key, jobs.cancel))
    app.router.add_get("/api/v2/jobs/{job_id}/events", route(key, events.job_events))
    app.router.add_post("/api/v2/assets", needs(Scope.RUN, route(key, assets.upload)))
    app.router.add_post("/api/v2/assets/from-hash", needs(Scope.RUN, route(key, assets.from_hash)))
    app.router.add_route("HEAD", "/api/v2/assets/by-hash/{hash}", route(key, assets.head_by_hash))
    app.router.add_get(ASSET, route(key, assets.get_asset))
    app.router.add_delete(ASSET, needs(Scope.RUN, route(key, assets.delete_asset)))
    app.router.add_get(ASSET + "/content", route(key, assets.get_content))
