"""A run's body is read by a faster JSON parser than json's, with json's acceptance and json's reading: whatever
json takes is taken and reads the same, whatever it refuses is refused."""

from __future__ import annotations

import json
import random

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from agent.api.requests import parse_run_body
from agent.errors import RequestParamsError


def parsed(body: bytes) -> object:
    prompt, _ = parse_run_body(body, make_mocked_request("POST", "/api/run", app=web.Application()), None)
    return prompt


def node(value_text: str) -> str:
    return f'{{"1": {{"class_type": "X", "inputs": {{"v": {value_text}, "w": 1}}}}}}'


def random_numbers() -> str:
    """300 numbers of up to 50 digits, as a JSON list: every float is read to the same value."""
    rng = random.Random(3)

    def digits(low: int, high: int) -> str:
        return "".join(rng.choices("0123456789", k=rng.randint(low, high)))

    numbers = (f"{rng.choice(['', '-'])}{rng.randint(1, 9)}{digits(0, 25)}.{digits(1, 25)}e{rng.randint(-330, 330)}"
               for _ in range(300))
    return f"[{', '.join(numbers)}]"


ACCEPTED = [
    node('"\\ud800 lone surrogate"'), node('"\\ude00\\ud83d"'), node("NaN"), node("-Infinity"), node("1e400"),
    node("123456789012345678901234567890"), node("-0"), node('{"a": 1, "b": 2, "a": 3}'), node("[" * 300 + "]" * 300),
    node('"\\u0000 \\/ \\u00e9 é"'), node("9007199254740993"), node(random_numbers()),
]


@pytest.mark.parametrize("text", ACCEPTED)
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_what_json_takes_is_taken_and_reads_the_same(text: str, encoding: str) -> None:
    body = text.encode(encoding, "surrogatepass")
    assert repr(parsed(body)) == repr(json.loads(body))


@pytest.mark.parametrize("body", [b"{", b'{"1": 1}x', b'{"1": "\xff"}', b'{"1": "\x01"}', b"[1,]", b'{"1": 01}',
                                  node("1" * 5000).encode(), b"", b"\xff\xfe"])
def test_what_json_refuses_is_refused(body: bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(body)
    with pytest.raises(RequestParamsError, match="not valid JSON"):
        parsed(body)
