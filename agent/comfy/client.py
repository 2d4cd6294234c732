"""ComfyUI's HTTP API, as the few calls a run needs, with timeouts on every one of them.

Every call shares one bounded pool (`connections`; the event connection is not in it), and file transfers
(uploads, `/view`) take at most a quarter of it, so the short calls a run cannot do without (`POST /prompt`,
`/history`, `/queue`, `/interrupt`) always find a place within their timeout, however many files move.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=60, sock_connect=5)
FILE_TIMEOUT = aiohttp.ClientTimeout(total=600, sock_connect=5, sock_read=60)
STREAMED_TIMEOUT = aiohttp.ClientTimeout(sock_connect=5, sock_read=60)  # a video takes as long as it takes
CHUNK_BYTES = 1 << 20


class ComfyUnreachable(Exception):
    """ComfyUI did not answer at all (refused, reset or timed out)."""


class ComfyHTTPError(Exception):
    """ComfyUI answered with a status the call does not expect."""

    def __init__(self, method: str, path: str, status: int, text: str) -> None:
        super().__init__(f"{method} {path} -> {status}: {text[:200]}")
        self.status = status
        self.text = text


class PromptRejected(Exception):
    """ComfyUI's own validation refused the prompt (its 400); its body is kept whole."""

    def __init__(self, body: dict[str, Any]) -> None:
        super().__init__("prompt rejected")
        self.body = body

    def summary(self) -> str:
        """The refusal in a line, each node's own problem first: ComfyUI's message for the whole prompt ("Prompt
        outputs failed validation") says only that something is wrong somewhere."""
        nodes = self.body.get("node_errors")
        found = [_node_problem(node, entry) for node, entry in nodes.items()] if isinstance(nodes, dict) else []
        if any(found):
            return "; ".join(problem for problem in found if problem)
        error = self.body.get("error")
        if not isinstance(error, dict):
            return str(error)
        message, details = str(error.get("message") or "ComfyUI refused the prompt"), error.get("details")
        return f"{message} ({details})" if details else message


def _node_problem(node: str, entry: Any) -> str:
    """`KSampler (node 3): cfg: Value 0 smaller than min of 1`, for every error ComfyUI lists for the node."""
    if not isinstance(entry, dict) or not isinstance(entry.get("errors"), list):
        return ""
    named = f"{entry.get('class_type') or 'node'} (node {node})"
    problems = []
    for error in entry["errors"]:
        if not isinstance(error, dict):
            continue
        message, details = str(error.get("message", "")), str(error.get("details") or "")
        input_name = (error.get("extra_info") or {}).get("input_name")
        if details and details == input_name:
            problems.append(f"{input_name}: {message}")
        else:
            problems.append(f"{message}: {details}" if details else message)
    return f"{named}: {'; '.join(problems)}" if problems else ""


@dataclass(frozen=True)
class Submitted:
    prompt_id: str
    number: float
    node_errors: dict[str, Any]


@dataclass(frozen=True)
class QueueState:
    running: frozenset[str]
    pending: frozenset[str]

    def holds(self, prompt_id: str) -> bool:
        return prompt_id in self.running or prompt_id in self.pending


def _ids(entries: Any) -> frozenset[str]:
    return frozenset(str(entry[1]) for entry in entries or () if isinstance(entry, list) and len(entry) > 1)


def connection_pool(connections: int) -> aiohttp.ClientSession:
    """The session every call to ComfyUI goes through; no proxy from the environment, no cookies kept."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections), trust_env=False,
                                 cookie_jar=aiohttp.DummyCookieJar())


class ComfyClient:
    """Thin async client; keep-alive connections are reused across runs."""

    def __init__(self, base_url: str, session: aiohttp.ClientSession, connections: int) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = session
        self._files = asyncio.Semaphore(max(1, connections // 4))

    async def _request(self, method: str, path: str, *, timeout: aiohttp.ClientTimeout = REQUEST_TIMEOUT,
                       **kwargs: Any) -> tuple[int, bytes]:
        try:
            async with self._session.request(method, self.base_url + path, timeout=timeout, **kwargs) as resp:
                return resp.status, await resp.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ComfyUnreachable(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc

    async def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        status, body = await self._request(method, path, **kwargs)
        if status != 200:
            raise ComfyHTTPError(method, path, status, body.decode("utf-8", "replace"))
        return json.loads(body) if body else None

    async def submit(self, prompt: dict[str, Any], client_id: str, prompt_id: str,
                     pnginfo: dict[str, Any] | None = None) -> Submitted:
        """`pnginfo`: what ComfyUI's savers write into an image beside the prompt (the editor's `workflow`)."""
        payload: dict[str, Any] = {"prompt": prompt, "client_id": client_id, "prompt_id": prompt_id}
        if pnginfo:
            payload["extra_data"] = {"extra_pnginfo": pnginfo}
        status, body = await self._request("POST", "/prompt", json=payload)
        text = body.decode("utf-8", "replace")
        if status == 400:
            raise PromptRejected(_json_object(text) or {"error": {"type": "invalid_prompt", "message": text}})
        if status != 200:
            raise ComfyHTTPError("POST", "/prompt", status, text)
        reply = _json_object(text) or {}
        return Submitted(str(reply.get("prompt_id", prompt_id)), reply.get("number", 0),
                         reply.get("node_errors") or {})

    async def history(self, prompt_id: str) -> dict[str, Any] | None:
        """The finished prompt's entry; None while it is queued, running, or unknown."""
        reply = await self._json("GET", f"/history/{prompt_id}")
        entry = reply.get(prompt_id) if isinstance(reply, dict) else None
        return entry if isinstance(entry, dict) else None

    async def queue(self) -> QueueState:
        reply = await self._json("GET", "/queue") or {}
        return QueueState(_ids(reply.get("queue_running")), _ids(reply.get("queue_pending")))

    async def interrupt(self, prompt_id: str) -> None:
        await self._request("POST", "/interrupt", json={"prompt_id": prompt_id})

    async def delete_pending(self, prompt_id: str) -> None:
        await self._request("POST", "/queue", json={"delete": [prompt_id]})

    async def node_info(self, node_class: str) -> dict[str, Any] | None:
        """`/object_info`'s entry for one node class; None when ComfyUI has no such class."""
        reply = await self._json("GET", "/object_info/" + quote(node_class, safe=""))  # custom classes have spaces
        info = reply.get(node_class) if isinstance(reply, dict) else None
        return info if isinstance(info, dict) else None

    async def object_info(self) -> dict[str, Any]:
        """Every node class ComfyUI has, its inputs, outputs and their lists."""
        reply = await self._json("GET", "/object_info", timeout=FILE_TIMEOUT)  # megabytes with many custom nodes
        if not isinstance(reply, dict):
            raise ValueError("/object_info is not an object")
        return reply

    async def view(self, image: dict[str, Any]) -> bytes:
        params = _view_params(image)
        async with self._files:
            status, body = await self._request("GET", "/view", params=params, timeout=FILE_TIMEOUT)
        if status != 200:
            raise ComfyHTTPError("GET", f"/view?filename={params['filename']}", status, "")
        return body

    async def view_chunks(self, image: dict[str, Any]) -> AsyncGenerator[bytes, None]:
        """The file in pieces as ComfyUI sends it, so a video is never held whole; close it when done early."""
        params = _view_params(image)
        async with self._files:
            try:
                async with self._session.get(self.base_url + "/view", params=params,
                                             timeout=STREAMED_TIMEOUT) as resp:
                    if resp.status != 200:
                        raise ComfyHTTPError("GET", f"/view?filename={params['filename']}", resp.status, "")
                    async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                        yield chunk
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                raise ComfyUnreachable(f"GET /view: {exc.__class__.__name__}: {exc}") from exc

    async def upload(self, data: bytes, filename: str, content_type: str) -> str:
        """Put a file in ComfyUI's input folder; returns the name a loader node refers to it by."""
        form = aiohttp.FormData()
        form.add_field("image", data, filename=filename, content_type=content_type)
        form.add_field("overwrite", "true")
        form.add_field("type", "input")
        async with self._files:
            reply = await self._json("POST", "/upload/image", data=form, timeout=FILE_TIMEOUT)
        name = str(reply["name"])
        return f"{reply['subfolder']}/{name}" if reply.get("subfolder") else name

    async def is_up(self) -> bool:
        """ComfyUI itself answers, not merely something on its port."""
        try:
            stats = await self._json("GET", "/system_stats", timeout=aiohttp.ClientTimeout(total=5))
        except (ComfyUnreachable, ComfyHTTPError, ValueError):
            return False
        return isinstance(stats, dict) and isinstance(stats.get("system"), dict)


def _view_params(image: dict[str, Any]) -> dict[str, str]:
    return {key: str(image.get(key) or "") for key in ("filename", "subfolder", "type")}


def _json_object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
