"""/upload/image and /view beyond the recorded variants (replayed in test_conformance_runs)."""

from __future__ import annotations

from io import BytesIO
from typing import Any

import pytest
from PIL import Image

from comfy_double.harness import DoubleClient


def png(color: tuple[int, ...], mode: str = "RGB") -> bytes:
    buffer = BytesIO()
    Image.new(mode, (12, 10), color).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_uploads_are_renamed_deduplicated_or_overwritten_on_disk(double: DoubleClient) -> None:
    red, blue = png((255, 0, 0)), png((0, 0, 255))
    names = [
        (await double.upload("x.png", red))[1]["name"],
        (await double.upload("x.png", red))[1]["name"],
        (await double.upload("x.png", blue))[1]["name"],
        (await double.upload("x.png", blue, overwrite="1"))[1]["name"],
    ]
    assert names == ["x.png", "x.png", "x (1).png", "x.png"]
    input_dir = double.server.config.input_dir
    assert (input_dir / "x.png").read_bytes() == blue
    assert (input_dir / "x (1).png").read_bytes() == blue


@pytest.mark.parametrize("kind", ["input", "temp", "output"])
async def test_view_returns_the_uploaded_bytes(double: DoubleClient, kind: str) -> None:
    data = png((1, 2, 3))
    status, reply = await double.upload("v.png", data, type=kind, subfolder="deep/er")
    assert (status, reply) == (200, {"name": "v.png", "subfolder": "deep/er", "type": kind})
    assert double.session is not None
    url = f"{double.url}/view?filename=v.png&subfolder=deep/er&type={kind}"
    async with double.session.get(url) as response:
        assert response.headers["Content-Disposition"] == 'filename="v.png"'
        assert (response.status, response.content_type, await response.read()) == (200, "image/png", data)


async def test_view_by_annotated_name(double: DoubleClient) -> None:
    await double.upload("a.png", png((9, 9, 9)), type="output")
    exchange = await double.exchange("GET", "/view?filename=a.png [output]&type=input")
    assert exchange["status"] == 200


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("filename=a.png&type=bogus", 400),
        ("filename=/etc/passwd", 400),
        ("filename=a.png&subfolder=../../..", 403),
        ("filename=missing.png", 404),
    ],
)
async def test_view_refusals(double: DoubleClient, query: str, status: int) -> None:
    assert (await double.exchange("GET", f"/view?{query}"))["status"] == status


@pytest.mark.parametrize(
    ("query", "decoded"),
    [
        ("preview=jpeg;80", {"format": "JPEG", "size": [12, 10], "mode": "RGB"}),
        ("preview=webp;50", {"format": "WEBP", "size": [12, 10], "mode": "RGBA"}),
        ("channel=rgb", {"format": "PNG", "size": [12, 10], "mode": "RGB"}),
        ("channel=a", {"format": "PNG", "size": [12, 10], "mode": "RGBA"}),
    ],
)
async def test_view_previews_and_channels(double: DoubleClient, query: str, decoded: dict[str, Any]) -> None:
    await double.upload("alpha.png", png((1, 2, 3, 128), "RGBA"), type="output")
    exchange = await double.exchange("GET", f"/view?filename=alpha.png&{query}")
    assert exchange["image_decoded"] == decoded
    assert exchange["headers"]["Content-Disposition"] == 'filename="alpha.png"'


async def test_alpha_channel_view_keeps_only_alpha(double: DoubleClient) -> None:
    await double.upload("alpha.png", png((1, 2, 3, 128), "RGBA"), type="output")
    assert double.session is not None
    async with double.session.get(f"{double.url}/view?filename=alpha.png&channel=a") as response:
        image = Image.open(BytesIO(await response.read()))
    assert image.getpixel((0, 0)) == (0, 0, 0, 128)
