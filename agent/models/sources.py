"""Where a model's bytes come from: an http(s) URL through the address guard (with the operator's token for
that host, and from a byte offset to resume), or an `s3://` / `oss://` object read with the agent's bucket
credentials. Failures come out as the caller's fault (Refused) or the source's (Failed)."""

from __future__ import annotations

import contextlib
import ipaddress
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from email.message import Message

import aiohttp
import httpx
from pydantic import SecretStr
from yarl import URL

from agent import __version__
from agent.buckets.clients import Buckets
from agent.buckets.location import parse_object_url
from agent.inputs.fetch import MAX_REDIRECTS, REDIRECTS, check_url
from agent.inputs.guard import AddressRefused, GuardedBackend, GuardedResolver, HostUnresolved
from agent.inputs.sources import FetchError

_CONTENT_RANGE = re.compile(r"bytes (\d+)-\d+/(\d+)")
_REFUSALS = {401: "a private model: set MODEL_TOKENS for its host", 403: "access denied", 404: "no such file",
             410: "no such file"}


class Refused(Exception):
    """The reference cannot work as it is (no such file, a refused address, access denied); says why."""


class Failed(Exception):
    """The source failed, stalled or broke off: the same reference may work later; says why."""


@dataclass
class Opened:
    """A model's body as it arrives: from byte `start` (0, or the offset asked for), of `total` when known,
    and the file name its server gave (Content-Disposition)."""

    start: int
    total: int | None
    filename: str | None
    chunks: AsyncIterator[bytes]


def token_for(tokens: Mapping[str, SecretStr], host: str) -> SecretStr | None:
    """The operator's token for a host or a parent domain of it (`huggingface.co` covers `www.huggingface.co`),
    never for the other hosts a download is sent on to (a CDN's signed URL refuses a second credential)."""
    host = host.lower()
    return next((token for name, token in tokens.items() if host == name or host.endswith(f".{name}")), None)


def _filename(disposition: str | None) -> str | None:
    if not disposition:
        return None
    message = Message()
    message["content-disposition"] = disposition
    name = message.get_filename()
    return name.rpartition("/")[2] if name else None


class ModelSources:
    """Over aiohttp rather than the httpx client URL inputs use: a model is gigabytes, and aiohttp's C parser
    reads it with a fraction of the CPU (httpx's pure-Python stack read 400-600 MiB/s on a core here and left
    none for the sha256), so a download keeps up with curl. The address guard is its resolver."""

    def __init__(self, backend: GuardedBackend, tokens: Mapping[str, SecretStr], stall_timeout: float,
                 buckets: Buckets) -> None:
        self.backend = backend
        self.tokens = tokens
        self.buckets = buckets
        self.stall_timeout = stall_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """Made at the first download, on the running loop."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=GuardedResolver(self.backend), limit=16),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0, sock_read=self.stall_timeout),
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, auto_decompress=False,
                headers={"User-Agent": f"comfyui-agent/{__version__}", "Accept": "*/*",
                         "Accept-Encoding": "identity"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @contextlib.asynccontextmanager
    async def open(self, url: str, offset: int) -> AsyncIterator[Opened]:
        """The body from `offset` (from 0 where the source cannot resume); errors name what went wrong."""
        try:
            if url.split("://", 1)[0].lower() in ("s3", "oss"):
                yield await self._object(url, offset)
            else:
                async with self._http(URL(url), offset) as opened:
                    yield opened
        except FetchError as exc:
            raise Refused(str(exc)) from None
        except (AddressRefused, HostUnresolved) as exc:
            raise Refused(f"refused address: {exc}" if isinstance(exc, AddressRefused)
                          else f"host not found: {exc}") from None
        except (aiohttp.InvalidURL, httpx.InvalidURL, ValueError) as exc:
            raise Refused(f"invalid URL: {exc}") from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise Failed(f"download failed: {exc.__class__.__name__}: {exc}"[:300]) from None

    @contextlib.asynccontextmanager
    async def _http(self, url: URL, offset: int) -> AsyncIterator[Opened]:
        for _ in range(MAX_REDIRECTS + 1):
            check_url(httpx.URL(str(url)))
            if _is_address(url.host or ""):  # aiohttp asks no resolver for an address: it is checked here
                await self.backend.addresses(url.host or "", url.port or 0)
            async with self.session.get(url, headers=self._headers(url, offset), allow_redirects=False) as response:
                if response.status in REDIRECTS and "Location" in response.headers:
                    url = url.join(URL(response.headers["Location"]))
                    continue
                if response.status == 416 and offset:  # the part held is not a start of this file
                    offset = 0
                    continue
                yield _opened(response, url, offset)
                return
        raise Refused(f"more than {MAX_REDIRECTS} redirects")

    def _headers(self, url: URL, offset: int) -> dict[str, str]:
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        token = token_for(self.tokens, url.host or "")
        if token is not None:
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        return headers

    async def _object(self, url: str, offset: int) -> Opened:
        from agent.buckets.bucket import ObjectNotFound  # loads the client: only for such models

        try:
            location = parse_object_url(url)
        except ValueError as exc:
            raise Refused(f"invalid object URL: {exc}") from None
        bucket = self.buckets.bucket(location.cloud, location.bucket)
        try:
            size, chunks = await bucket.stream(location.prefix, offset)
        except ObjectNotFound as exc:
            raise Refused(str(exc)) from None
        except Exception as exc:  # the client's own kinds (denied, unreachable) and the credentials' RuntimeError
            raise Failed(f"could not be read from the bucket: {str(exc)[:300]}") from None
        return Opened(offset, size, None, _object_body(chunks))


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def _opened(response: aiohttp.ClientResponse, url: URL, offset: int) -> Opened:
    status = response.status
    if status in _REFUSALS:
        raise Refused(f"HTTP {status} from {url.host} ({_REFUSALS[status]})")
    if status >= 400 or status not in (200, 206):
        raise (Failed if status >= 500 or status == 429 else Refused)(f"HTTP {status} from {url.host}")
    filename = _filename(response.headers.get("Content-Disposition"))
    if status == 206:
        match = _CONTENT_RANGE.fullmatch(response.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != offset:
            raise Failed(f"{url.host} answered a different range than asked for")
        return Opened(offset, int(match.group(2)), filename, _body(response))
    return Opened(0, response.content_length, filename, _body(response))


async def _body(response: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    """The bytes as they come; a stall or a broken connection is the source's failure, told as such before it
    reaches the code writing the file (a timeout is an OSError, as a full disk is)."""
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Failed(f"download failed: {exc.__class__.__name__}: {exc}"[:300]) from None


async def _object_body(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An object's bytes as they come; the bucket client's errors are the source's failure."""
    from obstore.exceptions import BaseError

    try:
        async for chunk in chunks:
            yield chunk
    except BaseError as exc:
        raise Failed(f"the bucket broke off: {str(exc)[:300]}") from None
