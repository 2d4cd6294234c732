"""Re-encoding for the caller: each format as asked, transparency and non-images handled."""

from __future__ import annotations

import io

from PIL import Image

from agent.outputs.convert import convert


def png(mode: str) -> bytes:
    out = io.BytesIO()
    Image.new(mode, (4, 4), (10, 20, 30, 0) if mode == "RGBA" else (10, 20, 30)).save(out, "PNG")
    return out.getvalue()


def test_every_format_and_jpeg_without_alpha() -> None:
    for target, expected in (("png", "PNG"), ("webp", "WEBP"), ("jpeg", "JPEG")):
        converted = convert(png("RGBA"), target, 70)
        assert converted is not None and Image.open(io.BytesIO(converted.data)).format == expected
    jpeg = convert(png("RGBA"), "jpeg", None)
    assert jpeg is not None and (jpeg.content_type, jpeg.extension) == ("image/jpeg", "jpg")


def test_what_is_not_an_image_passes_unchanged() -> None:
    assert convert(b"\x00\x00\x00\x18ftypmp42 a video", "webp", None) is None
