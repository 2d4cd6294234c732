"""`GET /api/usage?key=&from=&to=&group=day|key`: the usage ledger summed by key (and by UTC day), as JSON or,
asked with `Accept: text/csv` or `format=csv`, as CSV. A key reads its own usage; the admin anyone's."""

from __future__ import annotations

import datetime

from aiohttp import web

from agent.api.security import principal_of
from agent.api.services import Services
from agent.errors import RequestParamsError
from agent.usage.report import as_csv, day_range, report


async def usage(request: web.Request, services: Services) -> web.Response:
    principal = principal_of(request)
    query = request.query
    key = query.get("key") or None
    if not principal.admin:
        if key not in (None, principal.name):
            raise RequestParamsError(f"key {principal.name} reads its own usage only")
        key = principal.name
    group, form = query.get("group", "key"), query.get("format", "json")
    if group not in ("day", "key") or form not in ("json", "csv"):
        raise RequestParamsError("group is `day` or `key`; format is `json` or `csv`")
    days = day_range(query.get("from"), query.get("to"), datetime.datetime.now(datetime.UTC).date())
    made = await report(services.stores.usage, days, key, by_day=group == "day")
    if form == "csv" or "text/csv" in request.headers.get("Accept", ""):
        return web.Response(text=as_csv(made), content_type="text/csv",
                            headers={"Content-Disposition": f'attachment; filename="usage-{days[0]}-{days[-1]}.csv"'})
    return web.json_response(text=made.model_dump_json(by_alias=True))
