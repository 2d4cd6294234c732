"""The models API, behind the token: the models folder's contents (`GET /api/models`), a model pulled by URL
(`POST /api/models`, held until it is in place, or `Prefer: respond-async` and polled at
`GET /api/pulls/{id}` on any instance), and a model removed (`DELETE /api/models/{folder}/{name}`).

Served by workers and by a gateway alike: both mount the NAS, and a download needs no GPU. On FC an instance
is frozen once no request is open, so a pull there is held, or sent with `respond-async` to an instance that
stays busy."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from agent.api.requests import first_problem, json_body, wants_async
from agent.api.services import Services
from agent.api.statuses import retry_headers, status_for
from agent.errors import ModelInUse, NotFound, RequestParamsError
from agent.models import folder
from agent.models.pulls import PullStatus
from agent.models.refs import reference


class PullRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    folder: str


def _models_folder(services: Services) -> Any:
    if services.models.folder is None:
        raise RequestParamsError("this agent has no models folder: set MODELS_DIR (or NAS_DIR)")
    return services.models.folder


async def _kind(services: Services, kind: str, field: str) -> str:
    kinds = await asyncio.to_thread(folder.kinds_in, _models_folder(services), services.models.kinds)
    if kind not in kinds:
        raise RequestParamsError(f"{field} {kind!r}: not a models folder; the folders are {', '.join(kinds)}",
                                 folders=kinds)
    return kind


async def list_models(request: web.Request, services: Services) -> web.Response:
    kind = request.query.get("folder")
    if kind is not None:
        await _kind(services, kind, "folder")
    found = await asyncio.to_thread(folder.entries, _models_folder(services), kind)
    return web.json_response({"models": [entry.model_dump(mode="json") for entry in found]})


async def pull_model(request: web.Request, services: Services) -> web.Response:
    try:
        body = PullRequest.model_validate(json_body(await request.read()))
    except ValidationError as exc:
        raise first_problem(exc, "field") from None
    ref = reference("", "url", await _kind(services, body.folder, "folder"), body.url)
    pull = await services.pulls.start(ref)
    status_url = f"/api/pulls/{pull.pull_id}"
    if wants_async(request):
        return web.json_response({"pull": pull.model_dump(mode="json"), "status_url": status_url}, status=202,
                                 headers={"Location": status_url, "Preference-Applied": "respond-async"})
    ended = await services.pulls.finished(pull.pull_id)
    if ended.status is PullStatus.FAILED and ended.error is not None:
        status = status_for(ended.error)
        return web.json_response({**ended.error, "pull": ended.model_dump(mode="json")}, status=status,
                                 headers=retry_headers(status))
    return web.json_response({"pull": ended.model_dump(mode="json")})


async def get_pull(request: web.Request, services: Services) -> web.Response:
    pull_id = request.match_info["pull_id"]
    pull = await services.pulls.get(pull_id)
    if pull is None:
        raise NotFound(f"no pull {pull_id}", pull_id=pull_id)
    return web.json_response(pull.model_dump(mode="json"))


async def delete_model(request: web.Request, services: Services) -> web.Response:
    kind = await _kind(services, request.match_info["folder"], "folder")
    name = request.match_info["name"]
    try:
        await asyncio.to_thread(folder.delete, _models_folder(services), kind, name)
    except folder.ModelMissing as exc:
        raise NotFound(str(exc), folder=kind, name=name) from None
    except folder.ModelBusy as exc:
        raise ModelInUse(str(exc), folder=kind, name=name) from None
    return web.json_response({"deleted": f"{kind}/{name}"})
