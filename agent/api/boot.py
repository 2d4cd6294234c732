"""What the port answers while the agent loads: FC probes the port of every new instance, so it opens before the
application is imported (a second or more of CPU on a busy 2-core machine). Until the application takes over,
`/healthz` says the process is alive and every other request hears, in the JSON error shape, to come back in a
second: ComfyUI is not answering yet either (its start has not even begun), and FC's own health check (`/livez`)
waits for ComfyUI before it sends an instance traffic.
"""

from __future__ import annotations

import json

from aiohttp import web

from agent.errors import ComfyUIUnavailable

RETRY_AFTER_LOADING = 1
_ALIVE = json.dumps({"status": "ok"})  # /healthz's body (agent/api/replies.py Alive), without pydantic's import


async def answer(request: web.BaseRequest) -> web.Response:
    """Each answer closes its connection: the next request then reaches the application, not a boot server gone."""
    if request.path == "/healthz":
        response = web.Response(text=_ALIVE, content_type="application/json")
    else:
        starting = ComfyUIUnavailable("the agent is starting; ComfyUI is not answering yet",
                                      retry_after=RETRY_AFTER_LOADING)
        response = web.Response(text=json.dumps(starting.body()), content_type="application/json", status=503,
                                headers={"Retry-After": str(RETRY_AFTER_LOADING)})
    response.force_close()
    return response
