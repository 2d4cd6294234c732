"""Download one URL input within bounds: time, size, redirects, schemes, and addresses (see guard.py).

Nothing of the caller or of the agent travels with the request: no cookies kept between fetches, no
credentials (URLs carrying a user name are refused; .netrc and proxy settings are ignored), no FC headers.
"""

from __future__ import annotations

import asyncio
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpcore
import httpx

from agent import __version__
from agent.inputs.guard import AddressRefused, GuardedBackend, HostUnresolved
from agent.inputs.sources import FetchError

MAX_REDIRECTS = 3
REDIRECTS = {301, 302, 303, 307, 308}
TIMEOUTS = httpx.Timeout(connect=5.0, read=15.0, write=15.0, pool=5.0)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over a connection pool whose every connection passes the address guard."""

    def __init__(self, backend: GuardedBackend) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(ssl_context=httpx.create_ssl_context(), network_backend=backend,
                                                  max_connections=64, keepalive_expiry=5.0)


def _no_cookies() -> CookieJar:
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def guarded_client(backend: GuardedBackend, timeouts: httpx.Timeout) -> httpx.AsyncClient:
    """A client that follows no redirect itself (each hop is checked), keeps no cookie, reads no environment."""
    return httpx.AsyncClient(transport=GuardedTransport(backend), timeout=timeouts, trust_env=False,
                             cookies=_no_cookies(), follow_redirects=False,
                             headers={"User-Agent": f"comfyui-agent/{__version__}", "Accept": "*/*",
                                      "Accept-Encoding": "identity"})


class UrlFetcher:
    def __init__(self, backend: GuardedBackend, max_bytes: int, timeout: float) -> None:
        self.max_bytes = max_bytes
        self.timeout = timeout
        self._client = guarded_client(backend, TIMEOUTS)

    async def close(self) -> None:
        await self._client.aclose()

    async def fetch(self, url: str) -> bytes:
        try:
            async with asyncio.timeout(self.timeout):
                return await self._follow(httpx.URL(url))
        except TimeoutError:
            raise FetchError(f"timed out after {self.timeout:g} s") from None
        except AddressRefused as exc:
            raise FetchError(f"refused address: {exc}") from None
        except HostUnresolved as exc:
            raise FetchError(f"host not found: {exc}") from None
        except httpx.InvalidURL as exc:
            raise FetchError(f"invalid URL: {exc}") from None
        except httpx.HTTPError as exc:
            raise FetchError(f"download failed: {exc.__class__.__name__}: {exc}") from None

    async def _follow(self, url: httpx.URL) -> bytes:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(url)
            async with self._client.stream("GET", url) as response:
                if response.status_code in REDIRECTS and "location" in response.headers:
                    url = url.join(response.headers["location"])
                    continue
                if response.status_code >= 400:
                    raise FetchError(f"HTTP {response.status_code} from {url.host}")
                return await self._body(response)
        raise FetchError(f"more than {MAX_REDIRECTS} redirects")

    async def _body(self, response: httpx.Response) -> bytes:
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise FetchError(f"larger than the {self.max_bytes}-byte limit ({declared} bytes)")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > self.max_bytes:
                raise FetchError(f"larger than the {self.max_bytes}-byte limit")
        return bytes(body)


def check_url(url: httpx.URL) -> None:
    if url.scheme not in ("http", "https"):
        raise FetchError(f"only http and https URLs are accepted, not {url.scheme or 'none'}")
    if not url.host:
        raise FetchError("the URL has no host")
    if url.userinfo:
        raise FetchError("URLs carrying credentials are not accepted")
