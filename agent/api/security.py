"""Who may call the agent: the bearer token (AGENT_TOKEN, the admin) or an API key (agent/access/), and the
origins allowed to call it from a page. Each request acts as a principal (`principal_of`): the token's holder,
a key, or anyone on an agent with no token; a limited key's request takes one of its minute first.

The token is also accepted from a cookie, because a browser sends no Authorization header when it loads
ComfyUI's web UI or opens its websocket through the proxy: opening any page with `?token=...` answers with a
redirect to the same page without the token (out of the address bar and history) that sets the cookie. The
cookie is HttpOnly and SameSite=Strict, so another site's page cannot ride on it.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Middleware

from agent.access.principal import ADMIN_NAME, ANONYMOUS_NAME, Principal
from agent.api.services import S
from agent.api.statuses import Handler
from agent.errors import AgentError, Unauthorized
from agent.gateway.handoff import ON_BEHALF_HEADER
from agent.stores.keys import KEY_NAME, Limits, Scope

TOKEN_COOKIE = "comfyui_agent_token"
PUBLIC_PATHS = frozenset({"/healthz", "/app", "/openapi.json", "/docs", "/api/v2/health"})
# The web page, its example workflows and the contract's page hold no data (a published workflow is shown there
# to the token's holders only); the page asks for the token itself.
PUBLIC_PREFIXES = ("/app/", "/docs/")
PRINCIPAL = web.RequestKey("principal", Principal)
ALLOWED_HEADERS = ("Authorization, Content-Type, Prefer, task-id, x-fc-async-task-id, X-Fc-Invocation-Type, "
                   "Last-Event-ID, Idempotency-Key, Range")
EXPOSED_HEADERS = ("X-Task-Id, X-Task-Status, X-Task-Error, X-Task-Store-Error, Location, Retry-After, "
                   "Preference-Applied, WWW-Authenticate, Server-Timing, Content-Range")


def _presented(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query.get("token") or request.cookies.get(TOKEN_COOKIE)


def _is_public(request: web.Request, metrics_public: bool) -> bool:
    if request.path == "/metrics":
        return metrics_public
    return request.path in PUBLIC_PATHS or request.path.startswith(PUBLIC_PREFIXES) or request.method == "OPTIONS"


def presents_token(request: web.Request) -> bool:
    """Whether the caller is someone (anyone is, when no token is set): what a public path shows more of."""
    return PRINCIPAL in request


def principal_of(request: web.Request) -> Principal:
    """Who the request acts as (set on every path but the public ones)."""
    return request[PRINCIPAL]


def _acting(principal: Principal, request: web.Request) -> Principal:
    """The admin's token may act for a key (a gateway handing on a key's run): the run is that key's, its
    limits already held where it was admitted."""
    name = request.headers.get(ON_BEHALF_HEADER)
    if name is None or not principal.admin or name == principal.name:
        return principal
    if KEY_NAME.fullmatch(name) is None and name not in (ADMIN_NAME, ANONYMOUS_NAME):
        raise Unauthorized(f"{ON_BEHALF_HEADER} must name a key")
    return Principal(name, frozenset({Scope.RUN, Scope.READ}), Limits())


def authenticate(key: web.AppKey[S]) -> Middleware:
    """A principal on every path but the public ones (and `/metrics` with METRICS_PUBLIC), which get one too
    when the caller shows who it is; a limited key's request is counted against its minute."""

    @web.middleware
    async def checked(request: web.Request, handler: Handler) -> web.StreamResponse:
        services = request.app[key]
        public = _is_public(request, services.settings.metrics_public)
        try:
            principal = _acting(await services.keys.principal(_presented(request)), request)
        except AgentError:  # a wrong key, or a store that cannot say: a public path is served as to anyone
            if public:
                return await handler(request)
            raise
        request[PRINCIPAL] = principal
        if public:
            return await handler(request)
        await services.limiter.request(principal)
        if request.method == "GET" and "token" in request.query:
            return _remember(request, str(_presented(request)))
        return await handler(request)

    return checked


def needs(scope: Scope, handler: Handler) -> Handler:
    """A route for principals with `scope` (the admin has every one). The admin's routes: the keys, the models
    folder, the published workflows, the lifecycle hooks, ComfyUI's own API and UI behind the proxy."""
    async def checked(request: web.Request) -> web.StreamResponse:
        principal_of(request).require(scope)
        return await handler(request)

    return checked


def _remember(request: web.Request, token: str) -> web.Response:
    query = {key: value for key, value in request.query.items() if key != "token"}
    redirect = web.Response(status=303, headers={"Location": str(request.rel_url.with_query(query))})
    redirect.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="Strict", path="/", secure=request.secure)
    return redirect


def _cors_headers(origin: str, allowed: tuple[str, ...]) -> dict[str, str]:
    """A listed origin is echoed with credentials allowed; `*` allows any origin, but never credentials."""
    if origin in allowed:
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true",
                "Access-Control-Expose-Headers": EXPOSED_HEADERS, "Vary": "Origin"}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": EXPOSED_HEADERS}
    return {}


def cors(allowed: tuple[str, ...]) -> Middleware:
    """The CORS headers for the origins of CORS_ORIGINS, and their preflights."""
    @web.middleware
    async def shared(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None or not allowed:
            return await handler(request)
        headers = _cors_headers(origin, allowed)
        if request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers:
            preflight = {"Access-Control-Allow-Methods": "GET, POST, DELETE, OPTIONS",
                         "Access-Control-Allow-Headers": ALLOWED_HEADERS, "Access-Control-Max-Age": "600"}
            return web.Response(status=204, headers={**headers, **preflight} if headers else {})
        response = await handler(request)
        if not response.prepared:
            response.headers.update(headers)
        return response

    return shared
