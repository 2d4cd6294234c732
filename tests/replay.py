"""A ComfyUI that replays a recording frame by frame: the follower meets exactly what real ComfyUI sent.

Unlike the double, nothing is computed here: POST /prompt answers with the recorded body, the socket then
receives the recorded frames of that prompt in their recorded order, and /history answers with the recorded
entry once the frames are out. A recording whose socket was dropped (reconnect_during_execution) is replayed
with the drop, and the frames ComfyUI sent to the reconnected socket.
"""

from __future__ import annotations

import asyncio
import json
import struct
from typing import Any

from aiohttp import web

from recordings import recording, server_frames


def _frame_bytes(frame: dict[str, Any]) -> str | bytes:
    if frame.get("kind") == "binary":
        header = struct.pack(">II", frame.get("event_type", 1), frame.get("image_format_code", 2))
        return header + b"\0" * int(frame.get("image_bytes", 16))
    return json.dumps(frame["msg"])


def view_bytes(filename: str) -> bytes:
    """What the replay serves for an output file, so a test can predict its base64."""
    return f"image:{filename}".encode()


class Replay:
    """`data` replaces the named recording's content (a test's edited copy of it)."""

    def __init__(self, name: str, data: dict[str, Any] | None = None) -> None:
        self.data = data or recording(name)
        calls = self.data["http"]
        self.posts = [call for call in calls if call["method"] == "POST" and call["path"] == "/prompt"]
        self.histories = {prompt_id: entry for call in calls
                          if call["method"] == "GET" and call["path"].startswith("/history/")
                          for prompt_id, entry in call["body"].items()}
        self.sockets: dict[str, web.WebSocketResponse] = {}
        self.done: set[str] = set()
        self.running: str | None = None
        self._posted = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/ws", self.ws)
        app.router.add_post("/prompt", self.prompt)
        app.router.add_get("/history/{prompt_id}", self.history)
        app.router.add_get("/queue", self.queue)
        app.router.add_get("/system_stats", self.stats)
        app.router.add_get("/view", self.view)
        app.router.add_post("/interrupt", self.ok)
        app.router.add_post("/queue", self.ok)
        return app

    def _segment(self, index: int) -> list[dict[str, Any]]:
        """The recorded frames between this POST and the next one."""
        start = self.posts[index]["t_ms"]
        end = self.posts[index + 1]["t_ms"] if index + 1 < len(self.posts) else float("inf")
        return [frame for frame in self.data["ws"] if start <= frame["t_ms"] < end
                and (frame.get("dir") == "server->client" or frame.get("event") == "closed")]

    async def ws(self, request: web.Request) -> web.WebSocketResponse:
        sid = request.query["clientId"]
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        reconnect = sid in self.sockets
        self.sockets[sid] = ws
        if not reconnect:
            await ws.send_str(json.dumps({"type": "status", "data": {
                "status": {"exec_info": {"queue_remaining": 0}}, "sid": sid}}))
        else:
            asyncio.get_running_loop().create_task(self._send(ws, server_frames(self.data["ws_after_reconnect"])))
        async for _ in ws:
            pass
        return ws

    async def _send(self, ws: web.WebSocketResponse, frames: list[dict[str, Any]]) -> None:
        for frame in frames:
            if frame.get("event") == "closed":
                await ws.close()
                return
            await asyncio.sleep(0)  # a yield, not a wait: frames leave a loop turn apart; their order is this loop's
            message = frame.get("msg", {})
            if message.get("type") == "executing" and message["data"].get("node") is None:
                self.done.add(message["data"]["prompt_id"])  # ComfyUI writes the history first, then says so
            data = _frame_bytes(frame)
            await (ws.send_str(data) if isinstance(data, str) else ws.send_bytes(data))

    async def prompt(self, request: web.Request) -> web.Response:
        sid = (await request.json())["client_id"]
        index, self._posted = self._posted, self._posted + 1
        call = self.posts[index]
        if call["status"] != 200:
            body = call.get("body")
            return (web.json_response(body, status=call["status"]) if body is not None
                    else web.Response(text=call.get("body_text", ""), status=call["status"]))
        self.running = call["body"]["prompt_id"]
        asyncio.get_running_loop().create_task(self._send(self.sockets[sid], self._segment(index)))
        return web.json_response(call["body"])

    async def history(self, request: web.Request) -> web.Response:
        prompt_id = request.match_info["prompt_id"]
        return web.json_response({prompt_id: self.histories[prompt_id]} if prompt_id in self.done else {})

    async def queue(self, request: web.Request) -> web.Response:
        running = [[0, self.running, {}, {}, []]] if self.running and self.running not in self.done else []
        return web.json_response({"queue_running": running, "queue_pending": []})

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"system": {"comfyui_version": "replay"}})

    async def view(self, request: web.Request) -> web.Response:
        return web.Response(body=view_bytes(request.query["filename"]), content_type="image/png")

    async def ok(self, request: web.Request) -> web.Response:
        return web.Response()
