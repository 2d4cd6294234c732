"""The HTTP application: ComfyUI's routes (each also under ``/api``) plus the double's ``/__double__`` hooks."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from .config import MAX_UPLOAD_SIZE, DoubleConfig
from .executor import Executor
from .files import save_upload, view_file
from .hub import Hub
from .jobs import SORT_KEYS, STATUSES, all_jobs, one_job
from .nodedefs import NodeDefs
from .prompt_queue import PromptQueue
from .validation import PromptValidator
from .versions import VERSIONS, Version

log = logging.getLogger("comfy_double")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

def system_stats(version: Version) -> dict[str, Any]:
    """``/system_stats`` shaped like a CPU-only ComfyUI of that version."""
    page = os.sysconf("SC_PAGE_SIZE")
    total, free = page * os.sysconf("SC_PHYS_PAGES"), page * os.sysconf("SC_AVPHYS_PAGES")
    system = {
        "os": os.name, "ram_total": total, "ram_free": free, **version.system, "python_version": sys.version,
        "pytorch_version": "2.13.0+cpu", "embedded_python": False, "argv": sys.argv,
    }
    device = {
        "name": "cpu", "type": "cpu", "index": None, "vram_total": total, "vram_free": free,
        "torch_vram_total": total, "torch_vram_free": free,
    }
    return {"system": system, "devices": [device]}


INVALID_PROMPT_ID = {
    "type": "invalid_prompt_id", "message": "prompt_id must be a valid UUID",
    "details": "prompt_id must be a UUID string in canonical lowercase hyphenated form; omit it to let the server "
               "generate one",
    "extra_info": {},
}


def _canonical_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value
    except ValueError:
        return False


def _page_problem(query: Any) -> str | None:
    """ComfyUI's message for a bad ``limit`` or ``offset`` of ``/api/jobs``, if any."""
    for name, low in (("limit", 1), ("offset", None)):
        if name in query:
            try:
                value = int(query[name])
            except ValueError:
                return f"{name} must be an integer"
            if low is not None and value < low:
                return "limit must be a positive integer"
    return None


def member(data: Any, key: str, default: Any = None) -> Any:
    """``data[key]`` when ``key in data``: ComfyUI's own checks, which any JSON body (even a list) passes."""
    if key not in data:
        return default
    return data[key]


@web.middleware
async def empty_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Unknown paths (and GETs of POST-only routes) fall through to ComfyUI's static files: an empty 404."""
    try:
        return await handler(request)
    except web.HTTPMethodNotAllowed:
        if request.method not in ("GET", "HEAD"):
            raise
    except web.HTTPNotFound:
        pass
    return web.Response(status=404, content_type="application/octet-stream")


class DoubleServer:
    """One double: the queue, the executor, the socket hub, and the handlers that tie them together."""

    def __init__(self, config: DoubleConfig) -> None:
        self.config = config
        self.version = VERSIONS[config.version]
        self.defs = NodeDefs(config)
        self.hub = Hub(config, self._queue_info)
        self.queue = PromptQueue(self.hub.queue_updated)
        self.executor = Executor(config, self.defs, self.hub)
        self.number = 0  # ComfyUI's PromptServer.number: counts every POST /prompt without "number"
        self.counters = {"prompts_received": 0, "prompts_queued": 0, "uploads": 0}
        self._tasks: list[asyncio.Task[None]] = []

    def routes(self) -> list[tuple[str, str, Handler]]:
        """(method, path, handler) for every ComfyUI route the double serves."""
        return [
            ("GET", "/ws", self.hub.websocket_handler),
            ("GET", "/prompt", self.get_prompt),
            ("POST", "/prompt", self.post_prompt),
            ("GET", "/queue", self.get_queue),
            ("POST", "/queue", self.post_queue),
            ("GET", "/history", self.get_history),
            ("GET", "/history/{prompt_id}", self.get_history_entry),
            ("POST", "/history", self.post_history),
            ("POST", "/interrupt", self.post_interrupt),
            ("POST", "/free", self.post_free),
            ("POST", "/upload/image", self.upload_image),
            ("GET", "/view", self.view),
            ("GET", "/object_info", self.object_info),
            ("GET", "/object_info/{node_class}", self.object_info_node),
            ("GET", "/system_stats", self.json_of(lambda: system_stats(self.version))),
            ("GET", "/features", self.json_of(lambda: dict(self.version.features))),
            ("GET", "/embeddings", self.json_of(list)),
            ("GET", "/models", self.json_of(lambda: list(self.version.model_folders))),
            ("GET", "/models/{folder}", self.models_in_folder),
            ("GET", "/__double__/info", self.double_info),
            ("POST", "/__double__/control", self.double_control),
        ]

    def api_routes(self) -> list[tuple[str, str, Handler]]:
        """Routes that exist only under ``/api`` (declared with it, so ComfyUI serves them once more under
        ``/api/api``, which no client uses)."""
        if not self.version.jobs:
            return []
        return [("GET", "/api/jobs", self.get_jobs), ("GET", "/api/jobs/{job_id}", self.get_job)]

    async def start(self, _app: web.Application) -> None:
        """Create the directories and start the publish loop and the prompt worker."""
        self.config.make_dirs()
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self.hub.publish_loop()), loop.create_task(self.executor.worker(self.queue))]

    async def shutdown(self, _app: web.Application) -> None:
        """Sockets drop without a close frame, as when a ComfyUI process stops."""
        self.hub.drop_all()

    async def stop(self, _app: web.Application) -> None:
        """Stop the background tasks."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _queue_info(self) -> dict[str, Any]:
        return {"exec_info": {"queue_remaining": self.queue.remaining()}}

    @staticmethod
    def json_of(make: Callable[[], object]) -> Handler:
        """A GET handler answering make() as JSON."""

        async def handler(_request: web.Request) -> web.StreamResponse:
            return web.json_response(make())

        return handler

    async def get_prompt(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response(self._queue_info())

    def _next_number(self, json_data: dict[str, Any]) -> float:
        if "number" in json_data:
            return float(json_data["number"])
        number = self.number
        if member(json_data, "front"):
            number = -number
        self.number += 1
        return number

    def _prompt_id(self, json_data: dict[str, Any]) -> str | None:
        """The client's id, or a new one; None when this version refuses the client's."""
        if not self.version.strict_prompt_ids:
            return str(json_data.get("prompt_id", uuid.uuid4()))
        chosen = json_data.get("prompt_id")
        if chosen is None:
            return str(uuid.uuid4())
        return chosen if isinstance(chosen, str) and _canonical_uuid(chosen) else None

    async def post_prompt(self, request: web.Request) -> web.StreamResponse:
        """Validate and queue a prompt: 200 with node_errors, or 400 with ComfyUI's error body."""
        log.info("got prompt")
        self.counters["prompts_received"] += 1
        json_data = await request.json()
        number = self._next_number(json_data)
        if "prompt" not in json_data:
            error = {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided"}
            return web.json_response({"error": {**error, "extra_info": {}}, "node_errors": {}}, status=400)
        prompt = json_data["prompt"]
        prompt_id = self._prompt_id(json_data)
        if prompt_id is None:
            return web.json_response({"error": INVALID_PROMPT_ID, "node_errors": {}}, status=400)
        valid = PromptValidator(prompt, self.defs, self.config).validate(json_data.get("partial_execution_targets"))
        extra_data = json_data.get("extra_data", {})
        if "client_id" in json_data:
            extra_data["client_id"] = json_data["client_id"]
        if not valid.ok:
            log.warning("invalid prompt: %s", valid.error)
            return web.json_response({"error": valid.error, "node_errors": valid.node_errors}, status=400)
        if self.version.create_time:
            extra_data["create_time"] = int(time.time() * 1000)
        self.queue.put((number, prompt_id, prompt, extra_data, valid.outputs))
        self.counters["prompts_queued"] += 1
        return web.json_response({"prompt_id": prompt_id, "number": number, "node_errors": valid.node_errors})

    async def get_jobs(self, request: web.Request) -> web.StreamResponse:
        """``GET /api/jobs?status=&sort_by=&sort_order=&limit=&offset=`` with ComfyUI's checks and messages."""
        query = request.rel_url.query
        # "status=," asks for no status at all, as in ComfyUI; no (or an empty) status asks for every one
        statuses = [s.strip().lower() for s in query["status"].split(",") if s.strip()] if query.get("status") \
            else list(STATUSES)
        invalid = [s for s in statuses if s not in STATUSES]
        sort_by, order = query.get("sort_by", "created_at").lower(), query.get("sort_order", "desc").lower()
        problem = (f"Invalid status value(s): {', '.join(invalid)}. Valid values: {', '.join(STATUSES)}" if invalid
                   else "sort_by must be 'created_at' or 'execution_duration'" if sort_by not in SORT_KEYS
                   else "sort_order must be 'asc' or 'desc'" if order not in ("asc", "desc")
                   else _page_problem(query))
        if problem:
            return web.json_response({"error": problem}, status=400)
        limit = int(query["limit"]) if "limit" in query else None
        offset = max(int(query.get("offset", "0")), 0)
        jobs = all_jobs(list(self.queue.running.values()), list(self.queue.pending), self.queue.history, statuses,
                        sort_by, order == "desc")
        if query.get("workflow_id"):
            jobs = [job for job in jobs if job.get("workflow_id") == query["workflow_id"]]
        page = jobs[offset:][:limit]
        return web.json_response({"jobs": page, "pagination": {
            "offset": offset, "limit": limit, "total": len(jobs), "has_more": offset + len(page) < len(jobs)}})

    async def get_job(self, request: web.Request) -> web.StreamResponse:
        job = one_job(request.match_info["job_id"], list(self.queue.running.values()), list(self.queue.pending),
                      self.queue.history)
        if job is None:
            return web.json_response({"error": "Job not found"}, status=404)
        return web.json_response(job)

    async def get_queue(self, _request: web.Request) -> web.StreamResponse:
        running = list(self.queue.running.values())
        return web.json_response({"queue_running": running, "queue_pending": list(self.queue.pending)})

    async def post_queue(self, request: web.Request) -> web.StreamResponse:
        """``{"clear": true}`` and/or ``{"delete": [ids]}`` on pending prompts."""
        json_data = await request.json()
        if member(json_data, "clear"):
            self.queue.wipe_queue()
        for prompt_id in member(json_data, "delete", []):
            self.queue.delete(prompt_id)
        return web.Response(status=200)

    async def get_history(self, request: web.Request) -> web.StreamResponse:
        query = request.rel_url.query
        max_items = int(query["max_items"]) if "max_items" in query else None
        offset = int(query["offset"]) if "offset" in query else -1
        return web.json_response(self.queue.get_history(max_items, offset))

    async def get_history_entry(self, request: web.Request) -> web.StreamResponse:
        """``{}`` until the prompt is finished (and for unknown ids)."""
        prompt_id = request.match_info["prompt_id"]
        entry = self.queue.history.get(prompt_id)
        return web.json_response({prompt_id: copy.deepcopy(entry)} if entry is not None else {})

    async def post_history(self, request: web.Request) -> web.StreamResponse:
        json_data = await request.json()
        if member(json_data, "clear"):
            self.queue.history.clear()
        for prompt_id in member(json_data, "delete", []):
            self.queue.history.pop(prompt_id, None)
        return web.Response(status=200)

    async def post_interrupt(self, request: web.Request) -> web.StreamResponse:
        """Interrupt the running prompt; a ``prompt_id`` that is not running is a no-op."""
        try:
            json_data = await request.json()
        except json.JSONDecodeError:
            json_data = {}
        prompt_id = json_data.get("prompt_id")
        if not prompt_id or any(item[1] == prompt_id for item in self.queue.running.values()):
            self.executor.interrupt()
        else:
            log.info("Prompt %s is not currently running, skipping interrupt", prompt_id)
        return web.Response(status=200)

    async def post_free(self, request: web.Request) -> web.StreamResponse:
        """``free_memory`` empties the cache once the running prompt is done; ``unload_models`` is a no-op."""
        json_data = await request.json()
        for flag in ("unload_models", "free_memory"):
            if json_data.get(flag, False):
                self.queue.set_flag(flag, json_data[flag])
        return web.Response(status=200)

    async def upload_image(self, request: web.Request) -> web.StreamResponse:
        response = save_upload(await request.post(), self.config)
        self.counters["uploads"] += response.status == 200
        return response

    async def view(self, request: web.Request) -> web.StreamResponse:
        return view_file(request.rel_url.query, self.config)

    async def object_info(self, _request: web.Request) -> web.StreamResponse:
        return web.json_response({name: self.defs.info(name) for name in self.defs.names()})

    async def object_info_node(self, request: web.Request) -> web.StreamResponse:
        """One class, or ``{}`` for a class this ComfyUI does not have."""
        node_class = request.match_info["node_class"]
        return web.json_response({node_class: self.defs.info(node_class)} if node_class in self.defs else {})

    async def models_in_folder(self, request: web.Request) -> web.StreamResponse:
        folder = request.match_info["folder"]
        if folder not in self.version.model_folders:
            return web.Response(status=404)
        return web.json_response(self.config.models(folder))

    async def double_info(self, _request: web.Request) -> web.StreamResponse:
        """``GET /__double__/info``: what the double has seen and is doing."""
        running = [item[1] for item in self.queue.running.values()]
        pending = sorted(self.queue.pending, key=lambda item: (item[0], item[1]))
        return web.json_response({
            "pid": os.getpid(),
            **self.counters,
            "sockets": list(self.hub.sockets),
            "running": running[0] if running else None,
            "pending": [item[1] for item in pending],
            "held": self.executor.held,
        })

    async def double_control(self, request: web.Request) -> web.StreamResponse:
        """``POST /__double__/control``: knobs, dropping or stalling every socket, or exiting the process."""
        body = await request.json()
        if "ws_send_delay" in body:
            self.config.ws_send_delay = float(body["ws_send_delay"])
        if "node_delay" in body:
            self.config.node_delay = {str(k): float(v) for k, v in body["node_delay"].items()}
        if "hold" in body:
            self.executor.hold(bool(body["hold"]))
        if body.get("step"):
            self.executor.step()
        if body.get("drop_sockets"):
            self.hub.drop_all()
        if body.get("stall_sockets"):
            self.hub.stall_all()
        response = web.json_response({"ws_send_delay": self.config.ws_send_delay, "node_delay": self.config.node_delay,
                                      "hold": self.executor.holding})
        if body.get("exit") is not None:
            await response.prepare(request)
            await response.write_eof()
            self.config.exit_process(int(body["exit"]))
        return response


SERVER_KEY = web.AppKey("comfy_double_server", DoubleServer)


def create_app(config: DoubleConfig) -> web.Application:
    """An aiohttp application behaving like a ComfyUI server on the given directories."""
    server = DoubleServer(config)
    app = web.Application(client_max_size=MAX_UPLOAD_SIZE, middlewares=[empty_not_found])
    routes = server.routes()
    app.add_routes([web.route(method, path, handler) for method, path, handler in server.api_routes()])
    app.add_routes([web.route(method, "/api" + path, handler) for method, path, handler in routes])
    app.add_routes([web.route(method, path, handler) for method, path, handler in routes])
    app[SERVER_KEY] = server
    app.on_startup.append(server.start)
    app.on_shutdown.append(server.shutdown)
    app.on_cleanup.append(server.stop)
    return app
