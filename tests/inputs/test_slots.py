"""The size cap on inline data, judged from the text's length: an input over it is refused without decoding it,
by a gateway's check and by a worker's preparation alike."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable

import pytest

from agent.buckets.clients import Buckets
from agent.config import Settings
from agent.errors import InputImageError
from agent.inputs.prepare import InputPreparer
from agent.inputs.slots import Loaders
from files_server import png

LIMIT = 3000
HEAD = png((1, 2, 3))


class Uploads:
    def __init__(self) -> None:
        self.files: list[bytes] = []

    async def upload(self, data: bytes, filename: str, content_type: str) -> str:
        self.files.append(data)
        return filename


def settings() -> Settings:
    return Settings(comfyui_url="http://127.0.0.1:9", input_max_bytes=LIMIT)


def prompt(value: str) -> dict[str, dict[str, object]]:
    return {"1": {"class_type": "LoadImage", "inputs": {"image": value}}}


def of_size(size: int) -> bytes:
    return HEAD + bytes(size - len(HEAD))


@pytest.fixture
def decoded_characters(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many base64 characters went through the decoder, call by call (base64.b64decode's included)."""
    counts: list[int] = []
    decode = binascii.a2b_base64

    def counting(data: bytes, *args: object, **kwargs: object) -> bytes:
        counts.append(len(data))
        return decode(data, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(binascii, "a2b_base64", counting)
    return counts


Encoding = Callable[[bytes], str]
ENCODINGS: dict[str, Encoding] = {
    "bare": lambda data: base64.b64encode(data).decode(),
    "bare, unpadded": lambda data: base64.b64encode(data).decode().rstrip("="),
    "URL-safe": lambda data: base64.urlsafe_b64encode(data).decode(),
    "data URL": lambda data: f"data:image/png;base64,{base64.b64encode(data).decode()}",
    "wrapped at 76": lambda data: "\r\n".join(base64.b64encode(data).decode()[start:start + 76]
                                              for start in range(0, len(data) * 2, 76)),
}


async def prepared(value: str) -> list[bytes]:
    uploads = Uploads()
    preparer = InputPreparer(settings().inputs, uploads, Buckets.from_settings(settings().buckets, {}))  # type: ignore[arg-type]
    await preparer.prepare(prompt(value))
    return uploads.files


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
async def test_over_the_cap_is_refused_without_decoding(encode: Encoding, decoded_characters: list[int]) -> None:
    value = encode(of_size(LIMIT * 4))
    with pytest.raises(InputImageError, match=f"larger than the {LIMIT}-byte limit"):
        Loaders(settings().inputs).check(prompt(value))
    with pytest.raises(InputImageError, match=f"larger than the {LIMIT}-byte limit"):
        await prepared(value)
    assert sum(decoded_characters) < 100, "no more than a file's first bytes were decoded"


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
@pytest.mark.parametrize("size", [LIMIT - 2, LIMIT - 1, LIMIT])
async def test_up_to_the_cap_is_taken_whole(encode: Encoding, size: int) -> None:
    Loaders(settings().inputs).check(prompt(encode(of_size(size))))
    assert await prepared(encode(of_size(size))) == [of_size(size)]


@pytest.mark.parametrize("encode", ENCODINGS.values(), ids=ENCODINGS.keys())
@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 2, LIMIT + 3])
def test_one_byte_over_is_over(encode: Encoding, size: int) -> None:
    with pytest.raises(InputImageError, match="-byte limit"):
        Loaders(settings().inputs).check(prompt(encode(of_size(size))))


async def test_the_kind_is_judged_before_decoding(decoded_characters: list[int]) -> None:
    value = base64.b64encode(b"<html>" + bytes(LIMIT - 10)).decode()
    with pytest.raises(InputImageError, match="not an image file"):
        await prepared(value)
    assert sum(decoded_characters) < 100
