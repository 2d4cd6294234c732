"""The keys API: the admin makes (`POST /api/keys`, the secret in the answer once), lists (`GET /api/keys`) and
revokes (`DELETE /api/keys/{name}`) API keys; any caller asks who it is (`GET /api/me`). Served by workers and
the gateway alike: the keys live in the shared store."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.access.secrets import SHOWN
from agent.api.requests import first_problem, json_body
from agent.api.security import principal_of
from agent.api.services import Services
from agent.stores.keys import KeyRecord, Limits, Scope


class KeyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    scopes: list[Scope] = Field(default_factory=lambda: [Scope.RUN, Scope.READ])
    limits: Limits = Field(default_factory=Limits)


class KeyView(BaseModel):
    """A key as it is listed: never its digest nor its secret, only the secret's first characters."""

    name: str
    prefix: str
    scopes: list[Scope]
    limits: Limits
    created_at: float
    revoked_at: float | None


class NewKey(KeyView):
    key: str  # the secret, shown this once


class Me(BaseModel):
    name: str
    scopes: list[Scope]
    admin: bool
    limits: Limits


def shown(record: KeyRecord) -> KeyView:
    return KeyView(name=record.name, prefix=record.prefix[:SHOWN], scopes=record.scopes, limits=record.limits,
                   created_at=record.created_at, revoked_at=record.revoked_at)


async def create_key(request: web.Request, services: Services) -> web.Response:
    try:
        body = KeyRequest.model_validate(json_body(await request.read()))
    except ValidationError as exc:
        raise first_problem(exc, "field") from None
    record, secret = await services.keys.create(body.name, body.scopes, body.limits)
    made = NewKey(key=secret, **shown(record).model_dump())
    return web.json_response(text=made.model_dump_json(), status=201, headers={"Cache-Control": "no-store"})


async def list_keys(request: web.Request, services: Services) -> web.Response:
    listed = [shown(record).model_dump(mode="json") for record in await services.keys.listed()]
    return web.json_response({"keys": listed})


async def revoke_key(request: web.Request, services: Services) -> web.Response:
    return web.json_response(text=shown(await services.keys.revoke(request.match_info["name"])).model_dump_json())


async def me(request: web.Request, services: Services) -> web.Response:
    principal = principal_of(request)
    answer = Me(name=principal.name, scopes=sorted(principal.scopes), admin=principal.admin, limits=principal.limits)
    return web.json_response(text=answer.model_dump_json())
