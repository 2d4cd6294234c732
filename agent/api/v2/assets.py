"""Comfy API v2's assets: uploads (`POST /api/v2/assets`, multipart), a new record of bytes already stored
(`from-hash`, after the SDK's `HEAD by-hash`), their records and bytes, and deletion; and a job's outputs, which
v2 names as assets too (their ids name the job, node and place: agent/api/v2/view.py).

An upload's bytes are stored once per content (agent/assets/blobs.py): an identical upload stores nothing and
answers 200 with `created_new: false`. Bytes are checked as any input's are (INPUT_MAX_BYTES, the kind a loader
takes), so a file ComfyUI would refuse is refused here, before anything is stored. An asset's bytes come from the
output store by a freshly signed URL (302, which the SDK follows without the token), or from the folder where
the assets are kept (with `Range`)."""

from __future__ import annotations

import time

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from agent.api.requests import json_body
from agent.api.services import Services
from agent.api.v2.errors import V2Error
from agent.api.v2.jobs import find_job, origin
from agent.api.v2.models import Asset
from agent.api.v2.view import URL_LIFE, moment, node_files, outputs_of, parse_output_id, type_of_file
from agent.assets.book import AssetBook, AssetRecord
from agent.assets.hashes import hash_of, is_hash
from agent.errors import NotFound
from agent.inputs.sniff import sniff
from agent.tasks.model import ImageRef, Task

FILE_PATH_MAX = 255


def _answer(record: AssetRecord, where: str, created_new: bool | None = None, status: int = 200) -> web.Response:
    url = f"{where}/api/v2/assets/{record.id}/content"
    asset = Asset(id=record.id, hash=record.hash, size_bytes=record.size_bytes, content_type=record.content_type,
                  file_path=record.file_path, created_new=created_new, created_at=moment(record.created_at),
                  url=url, url_expires_at=moment(time.time() + URL_LIFE))
    return web.json_response(text=asset.model_dump_json(), status=status)


def _file_path(value: object) -> str:
    """A relative name of the caller's choice, kept as the asset's name (nothing is placed by it)."""
    if not isinstance(value, str) or not 0 < len(value) <= FILE_PATH_MAX or value.startswith("/") or any(
            part in ("", ".", "..") for part in value.split("/")) or not value.isprintable():
        raise V2Error("invalid_request", 422, f"file_path must be a relative path of up to {FILE_PATH_MAX} "
                      "characters, without `..` or empty parts")
    return value


async def _form(request: web.Request, limit: int) -> tuple[dict[str, str], bytes]:
    """The text fields and the `file` part's bytes, read up to `limit` (over it: 413 naming it)."""
    if not request.content_type.startswith("multipart/"):
        raise V2Error("invalid_request", 422, "an upload is multipart/form-data with a `file` part")
    fields: dict[str, str] = {}
    data: bytes | None = None
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                continue
            if part.name in fields or (part.name == "file" and data is not None):
                raise V2Error("invalid_request", 422, f"the upload has more than one `{part.name}` part")
            if part.name == "file":
                data = await _read_file(part, limit)
            elif part.name and part.name != "tags":  # tags (repeatable) are not kept
                fields[part.name] = (await part.read(decode=False)).decode(errors="replace")[:4096]
    except (ValueError, AssertionError, KeyError, HttpProcessingError) as exc:  # aiohttp's reader, malformed body
        raise V2Error("invalid_request", 422, f"the multipart body cannot be read: {exc}"[:300]) from None
    if data is None:
        raise V2Error("invalid_request", 422, "the upload has no `file` part")
    return fields, data


async def _read_file(part: BodyPartReader, limit: int) -> bytes:
    body = bytearray()
    while chunk := await part.read_chunk(1 << 16):
        body += chunk
        if len(body) > limit:
            raise V2Error("payload_too_large", 413, f"the file is over the {limit}-byte limit (INPUT_MAX_BYTES)",
                          {"limit": limit})
    return bytes(body)


def _content_type(data: bytes) -> str:
    """What the bytes are, judged as an input's are: a kind no loader takes is refused."""
    if not data:
        raise V2Error("invalid_request", 422, "the file is empty")
    found = sniff(data[:64])
    if found is None:
        raise V2Error("invalid_request", 422, "the file is not an image, video or audio file a loader takes")
    return found.mime


async def upload(request: web.Request, services: Services) -> web.Response:
    fields, data = await _form(request, services.settings.inputs.max_bytes)
    file_path = _file_path(fields.get("file_path") or "upload")
    content_type = _content_type(data)
    digest = await hash_of(data)
    expected = fields.get("expected_hash")
    if expected and expected.lower() != digest:
        raise V2Error("hash_mismatch", 409, f"the file's hash is {digest}, not {expected}",
                      {"expected": expected, "actual": digest})
    stored = await services.blobs.has(digest)
    if not stored:
        await services.blobs.put(digest, data, content_type)
    record = AssetRecord(hash=digest, size_bytes=len(data), content_type=content_type, file_path=file_path)
    await AssetBook(services.stores.shared).add(record)
    return _answer(record, origin(request), created_new=not stored, status=200 if stored else 201)


async def from_hash(request: web.Request, services: Services) -> web.Response:
    body = json_body(await request.read())
    digest = body.get("hash") if isinstance(body, dict) else None
    if not is_hash(digest):
        raise V2Error("invalid_request", 422, "`hash` must be `blake3:` and 64 lowercase hex digits")
    assert isinstance(digest, str) and isinstance(body, dict)
    found = await services.blobs.read(digest, services.settings.inputs.max_bytes)
    if found is None:
        raise V2Error("blob_not_found", 404, f"no asset has the hash {digest}")
    record = AssetRecord(hash=digest, size_bytes=len(found), content_type=_content_type(found),
                         file_path=_file_path(body.get("file_path") or "upload"))
    await AssetBook(services.stores.shared).add(record)
    return _answer(record, origin(request), created_new=False, status=201)


async def head_by_hash(request: web.Request, services: Services) -> web.Response:
    digest = request.match_info["hash"]
    return web.Response(status=200 if is_hash(digest) and await services.blobs.has(digest) else 404)


async def _output(request: web.Request, services: Services, asset_id: str) -> tuple[ImageRef, Task] | None:
    """The output file an id names and its job's task; None when the id is no output's (it may be an upload's)."""
    parsed = parse_output_id(asset_id)
    if parsed is None:
        return None
    job_id, node, index = parsed
    task, _ = await find_job(request, services, job_id)
    files = node_files(task.progress[node]) if node in task.progress else []
    return (files[index], task) if 0 <= index < len(files) else None


async def _record(services: Services, asset_id: str) -> AssetRecord:
    record = await AssetBook(services.stores.shared).get(asset_id)
    if record is None:
        raise NotFound(f"no asset {asset_id[:100]}")
    return record


async def get_asset(request: web.Request, services: Services) -> web.Response:
    asset_id = request.match_info["asset_id"]
    output = await _output(request, services, asset_id)
    if output is None:
        return _answer(await _record(services, asset_id), origin(request))
    task = output[1]
    found = next(item for item in outputs_of(task, origin(request)) if item.id == asset_id)
    asset = Asset(id=found.id, hash=found.hash, size_bytes=found.size_bytes, content_type=found.content_type,
                  file_path=found.name, created_at=moment(task.finished_at or task.created_at), url=found.url,
                  url_expires_at=found.url_expires_at, job_id=task.task_id)
    return web.json_response(text=asset.model_dump_json())


async def delete_asset(request: web.Request, services: Services) -> web.Response:
    """The record goes; its bytes stay for the records of the same content. An output is its job's, not
    deletable on its own."""
    if not await AssetBook(services.stores.shared).delete(request.match_info["asset_id"]):
        raise NotFound(f"no uploaded asset {request.match_info['asset_id'][:100]}")
    return web.Response(status=204)


async def get_content(request: web.Request, services: Services) -> web.StreamResponse:
    asset_id = request.match_info["asset_id"]
    output = await _output(request, services, asset_id)
    if output is not None:
        return await _output_content(request, services, output[0])
    record = await _record(services, asset_id)
    found = await services.blobs.find(record.hash)
    if found is None:
        raise NotFound(f"the bytes of asset {asset_id} are gone")
    if found.url is not None:
        raise web.HTTPFound(found.url)
    assert found.path is not None
    return web.FileResponse(found.path, headers={"Content-Type": record.content_type})


async def _output_content(request: web.Request, services: Services, file: ImageRef) -> web.StreamResponse:
    fetched = await services.front.fetch(file)
    if fetched.url is not None:
        raise web.HTTPFound(fetched.url)
    content_type = type_of_file(file)
    if fetched.path is not None:
        return web.FileResponse(fetched.path, headers={"Content-Type": content_type})
    return _ranged(request, fetched.data or b"", content_type)


def _ranged(request: web.Request, data: bytes, content_type: str) -> web.Response:
    """Bytes in hand, answered as a file response answers (`Range` of one part), without its thread hops."""
    headers = {"Accept-Ranges": "bytes"}
    try:
        wanted = request.http_range
        start, stop, _ = wanted.indices(len(data))
    except ValueError:
        start = stop = 0
    else:
        if wanted.start is None and wanted.stop is None:
            return web.Response(body=data, content_type=content_type, headers=headers)
    if start >= stop:
        raise web.HTTPRequestRangeNotSatisfiable(headers={"Content-Range": f"bytes */{len(data)}"})
    headers["Content-Range"] = f"bytes {start}-{stop - 1}/{len(data)}"
    return web.Response(status=206, body=data[start:stop], content_type=content_type, headers=headers)
