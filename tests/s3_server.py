"""A real S3 server for the tests (moto's server mode on 127.0.0.1, never a mocked client), and a bucket on it
as the tests look at it: over plain HTTP. The fixtures are registered in tests/conftest.py."""

from __future__ import annotations

import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_process import free_port
from waiting import wait_for


@dataclass(frozen=True)
class S3:
    endpoint: str
    bucket: str

    def get(self, url: str) -> httpx.Response:
        return httpx.get(url, timeout=10)

    def put(self, key: str, data: bytes) -> None:
        httpx.put(f"{self.endpoint}/{self.bucket}/{key}", content=data, timeout=10).raise_for_status()

    def keys(self) -> list[str]:
        listing = httpx.get(f"{self.endpoint}/{self.bucket}", params={"list-type": "2"}, timeout=10).text
        return sorted(part.split("</Key>")[0] for part in listing.split("<Key>")[1:])


def store_settings(s3: S3, output_dir: Path, **more: Any) -> dict[str, Any]:
    """An agent's settings for delivering to this bucket under `runs/`, ComfyUI writing to `output_dir`."""
    return {"output_store": f"s3://{s3.bucket}/runs", "output_store_endpoint": s3.endpoint,
            "output_store_key_id": "test-key", "output_store_key_secret": "test-secret",
            "comfyui_output_dir": output_dir, **more}


def _answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _answers(port), 30, "moto's S3 server")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture
def s3(s3_endpoint: str) -> S3:
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    httpx.put(f"{s3_endpoint}/{bucket}", timeout=10).raise_for_status()
    return S3(s3_endpoint, bucket)
