"""Fetching URL inputs from a local server: limits, redirects re-checked at every hop, nothing leaked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

import pytest

from agent.inputs.fetch import UrlFetcher
from agent.inputs.guard import GuardedBackend
from agent.inputs.sources import FetchError
from agent_harness import serving
from files_server import FilesServer, png


@pytest.fixture
async def files() -> AsyncIterator[tuple[FilesServer, str]]:
    server = FilesServer()
    async with serving(server.app()) as url:
        yield server, url


def fetcher(max_bytes: int = 1_000_000, timeout: float = 5.0) -> UrlFetcher:
    return UrlFetcher(GuardedBackend(False, frozenset({"127.0.0.1"})), max_bytes, timeout)


async def fetch(url: str, **limits: float) -> bytes:
    client = fetcher(**limits)  # type: ignore[arg-type]
    try:
        return await client.fetch(url)
    finally:
        await client.close()


async def test_plain_download(files: tuple[FilesServer, str]) -> None:
    _, url = files
    assert await fetch(f"{url}/png/1/2/3") == png((1, 2, 3))


async def test_redirect_chain_within_the_limit(files: tuple[FilesServer, str]) -> None:
    _, url = files
    assert await fetch(f"{url}/hop/3") == png((10, 20, 30))
    with pytest.raises(FetchError, match="more than 3 redirects"):
        await fetch(f"{url}/hop/4")


@pytest.mark.parametrize("target", [
    "http://localhost:{port}/png/1/2/3",  # a name (not allowlisted) that resolves to loopback
    "http://169.254.169.254/latest/meta-data/",
    "http://100.100.100.200/latest/meta-data/ram/",
    "http://10.0.0.1/x.png",
    "http://[::1]:{port}/png/1/2/3",
    "http://[::ffff:127.0.0.1]:{port}/png/1/2/3",
    "http://0.0.0.0:{port}/png/1/2/3",
])
async def test_redirect_to_a_private_address_is_refused(files: tuple[FilesServer, str], target: str) -> None:
    server, url = files
    port = url.rsplit(":", 1)[1]
    with pytest.raises(FetchError, match="refused address"):
        await fetch(f"{url}/to?url={quote(target.format(port=port), safe='')}")
    assert server.hits["/png/1/2/3"] == 0


async def test_redirect_to_another_scheme_is_refused(files: tuple[FilesServer, str]) -> None:
    _, url = files
    with pytest.raises(FetchError, match="only http and https"):
        await fetch(f"{url}/to?url={quote('file:///etc/passwd', safe='')}")


async def test_direct_private_address_is_refused_without_allowlist() -> None:
    client = UrlFetcher(GuardedBackend(False, frozenset()), 1000, 5)
    try:
        with pytest.raises(FetchError, match="loopback"):
            await client.fetch("http://127.0.0.1:9/x.png")
    finally:
        await client.close()


async def test_slow_server_times_out(files: tuple[FilesServer, str]) -> None:
    _, url = files
    with pytest.raises(FetchError, match="timed out after 1 s"):
        await fetch(f"{url}/slow", timeout=1.0)
    with pytest.raises(FetchError, match="timed out"):
        await fetch(f"{url}/drip", timeout=1.0)


async def test_endless_body_stops_at_the_cap(files: tuple[FilesServer, str]) -> None:
    _, url = files
    with pytest.raises(FetchError, match="larger than the 100000-byte limit"):
        await fetch(f"{url}/endless", max_bytes=100_000)


async def test_declared_size_over_the_cap_is_refused_before_reading(files: tuple[FilesServer, str]) -> None:
    _, url = files
    with pytest.raises(FetchError, match=r"\(5000000 bytes\)"):
        await fetch(f"{url}/big/5000000", max_bytes=100_000)


async def test_http_errors_are_named(files: tuple[FilesServer, str]) -> None:
    _, url = files
    with pytest.raises(FetchError, match="HTTP 404"):
        await fetch(f"{url}/missing")


async def test_urls_with_credentials_are_refused(files: tuple[FilesServer, str]) -> None:
    server, url = files
    with pytest.raises(FetchError, match="credentials"):
        await fetch(url.replace("http://", "http://user:pass@") + "/png/1/2/3")
    assert not server.hits


async def test_no_cookie_or_credential_travels(files: tuple[FilesServer, str]) -> None:
    server, url = files
    client = fetcher()
    try:
        assert await client.fetch(f"{url}/cookie") == png((5, 6, 7))
        await client.fetch(f"{url}/headers")
    finally:
        await client.close()
    for headers in server.headers:
        assert not {"Cookie", "Authorization", "Proxy-Authorization"} & set(headers)
        assert not [name for name in headers if name.lower().startswith("x-fc")]
