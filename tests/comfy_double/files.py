"""``POST /upload/image`` and ``GET /view``, with ComfyUI's renaming, status codes and traversal checks."""

from __future__ import annotations

import hashlib
import mimetypes
import os
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from aiohttp import web
from PIL import Image

from .config import DoubleConfig
from .paths import annotated_filepath

_FORCED_DOWNLOAD = {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}


def _upload_dir(kind: str | None, config: DoubleConfig) -> tuple[str, str]:
    """The directory for an upload ``type`` (default input); ComfyUI fails with a 500 on any other type."""
    kind = kind or "input"
    directory = config.directory(kind)
    if directory is None:
        raise ValueError(f"unknown upload type {kind!r}")  # ComfyUI: UnboundLocalError -> text 500
    return str(directory), kind


def _same_content(path: str, image: web.FileField) -> bool:
    """ComfyUI's duplicate check (fix for #3465): same name and same bytes keep the name."""
    with open(path, "rb") as existing:
        same = hashlib.sha256(existing.read()).digest() == hashlib.sha256(image.file.read()).digest()
    image.file.seek(0)
    return same


def _free_name(folder: str, filename: str, image: web.FileField) -> tuple[str, bool]:
    """``x.png``, else ``x (1).png``, ``x (2).png``...; True when an identical file already has the name."""
    stem, ext = os.path.splitext(filename)
    counter = 1
    while os.path.exists(os.path.join(folder, filename)):
        if _same_content(os.path.join(folder, filename), image):
            return filename, True
        filename = f"{stem} ({counter}){ext}"
        counter += 1
    return filename, False


def save_upload(post: Mapping[str, Any], config: DoubleConfig) -> web.Response:
    """Store the multipart ``image`` field under ``type``/``subfolder``, honouring ``overwrite``."""
    image = post.get("image")
    upload_dir, kind = _upload_dir(post.get("type"), config)
    if not (image and image.file) or not image.filename:
        return web.Response(status=400)
    subfolder = post.get("subfolder", "")
    folder = os.path.join(upload_dir, os.path.normpath(subfolder))
    if os.path.commonpath((upload_dir, os.path.abspath(os.path.join(folder, image.filename)))) != upload_dir:
        return web.Response(status=400)
    os.makedirs(folder, exist_ok=True)
    filename, duplicate = image.filename, False
    if post.get("overwrite") not in ("true", "1"):
        filename, duplicate = _free_name(folder, filename, image)
    if not duplicate:
        with open(os.path.join(folder, filename), "wb") as target:
            target.write(image.file.read())
    return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})


def _view_path(query: Mapping[str, str], config: DoubleConfig) -> str | web.Response:
    """Resolve filename/type/subfolder to a file path, or the error response ComfyUI gives."""
    filename, output_dir = annotated_filepath(query["filename"], config)
    if not filename or filename[0] == "/" or ".." in filename:
        return web.Response(status=400)
    if output_dir is None:
        directory = config.directory(query.get("type", "output"))
        if directory is None:
            return web.Response(status=400)
        output_dir = str(directory)
    if "subfolder" in query:
        full_output_dir = os.path.join(output_dir, query["subfolder"])
        if os.path.commonpath((os.path.abspath(full_output_dir), output_dir)) != output_dir:
            return web.Response(status=403)
        output_dir = full_output_dir
    return os.path.join(output_dir, os.path.basename(filename))


def _image_response(image: Image.Image, fmt: str, filename: str, **save_options: object) -> web.Response:
    buffer = BytesIO()
    image.save(buffer, format=fmt, **save_options)
    headers = {"Content-Disposition": f'filename="{filename}"'}
    return web.Response(body=buffer.getvalue(), content_type=f"image/{fmt.lower()}", headers=headers)


def _preview(path: str, query: Mapping[str, str], filename: str) -> web.Response:
    """``preview=webp;50`` or ``preview=jpeg;90``: a re-encoded copy."""
    settings = query["preview"].split(";")
    fmt = settings[0] if settings[0] in ("webp", "jpeg") and "a" not in query.get("channel", "") else "webp"
    quality = int(settings[-1]) if settings[-1].isdigit() else 90
    with Image.open(path) as img:
        converted = img.convert("RGB") if fmt == "jpeg" or query.get("channel", "") == "rgb" else img
        return _image_response(converted, fmt, filename, quality=quality)


def _channel(path: str, channel: str, filename: str) -> web.Response:
    """``channel=rgb`` (alpha dropped) or ``channel=a`` (alpha only), as PNG."""
    with Image.open(path) as img:
        if channel == "rgb":
            return _image_response(img.convert("RGB"), "PNG", filename)
        alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
        alpha_image = Image.new("RGBA", img.size)
        alpha_image.putalpha(alpha)
        return _image_response(alpha_image, "PNG", filename)


def view_file(query: Mapping[str, str], config: DoubleConfig) -> web.StreamResponse:
    """``GET /view``: 400 for ``..`` or an unknown type, 403 for a subfolder outside, 404 when missing."""
    if "filename" not in query:
        return web.Response(status=404)
    path = _view_path(query, config)
    if isinstance(path, web.Response):
        return path
    if not os.path.isfile(path):
        return web.Response(status=404)
    filename = os.path.basename(path)
    if "preview" in query:
        return _preview(path, query, filename)
    channel = query.get("channel", "rgba")
    if channel in ("rgb", "a"):
        return _channel(path, channel, filename)
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if content_type in _FORCED_DOWNLOAD:
        content_type = "application/octet-stream"
    headers = {"Content-Disposition": f'filename="{filename}"', "Content-Type": content_type}
    return web.FileResponse(path, headers=headers)
