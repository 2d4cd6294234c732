"""One bucket, through obstore: objects put and read, GET URLs signed.

obstore (Rust's object_store) is one maintained async client for AWS S3 and OSS's S3 API alike: it streams a
file from disk in parts without reading it into Python, signs GET URLs locally, takes a credential callback
(FC's per-request role credentials) and sends plain bodies, not the `aws-chunked` ones with trailing checksums
that OSS refuses (recent AWS SDKs send those by default). aiobotocore would do the same with botocore's weight
at import and per call. Constructing the client does no I/O.
"""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.exceptions import NotFoundError
from obstore.store import S3Store

from agent.buckets.credentials import Credentials

if TYPE_CHECKING:
    from obstore.store import ClientConfig

# A file up to this size goes in one PUT, read whole: a multipart upload costs three more requests (create,
# complete, and a part per 5 MiB), which on a 12 MB image doubled the time in the store. Anything larger, and a
# stream of unknown size (a video from /view), goes in parts, a few at a time, so memory holds only those.
SINGLE_PUT_BYTES = 16 << 20
PARTS_AT_ONCE = 4


class ObjectTooLarge(Exception):
    """The object is larger than the caller takes."""


class ObjectNotFound(Exception):
    """No object under that key (or the bucket does not exist)."""


class Bucket:
    def __init__(self, cloud: str, name: str, *, endpoint: str | None, region: str, credentials: Credentials,
                 url_ttl: float) -> None:
        self.cloud = cloud
        self.name = name
        self.url_ttl = datetime.timedelta(seconds=url_ttl)
        options: ClientConfig = {"allow_http": bool(endpoint and endpoint.startswith("http://"))}
        self._store = S3Store(name, region=region, endpoint=endpoint, virtual_hosted_style_request=cloud == "oss",
                              credential_provider=credentials, client_options=options)

    async def put(self, key: str, source: Path | bytes | AsyncIterable[bytes], content_type: str,
                  size: int | None = None) -> None:
        """`size`: the source's, when known (a file, bytes)."""
        await obstore.put_async(self._store, key, source, attributes={"Content-Type": content_type},
                                use_multipart=size is None or size > SINGLE_PUT_BYTES,
                                max_concurrency=PARTS_AT_ONCE)

    async def exists(self, key: str) -> bool:
        try:
            await obstore.head_async(self._store, key)
        except (FileNotFoundError, NotFoundError):
            return False
        return True

    async def signed_url(self, key: str) -> str:
        return await obstore.sign_async(self._store, "GET", key, self.url_ttl)

    async def get(self, key: str, max_bytes: int) -> bytes:
        """The whole object, refused before its body is read when it declares more than `max_bytes`."""
        try:
            found = await obstore.get_async(self._store, key)
        except (FileNotFoundError, NotFoundError):  # obstore raises the former for S3's NoSuchKey
            raise ObjectNotFound(f"no object {key!r} in bucket {self.name!r}") from None
        if found.meta["size"] > max_bytes:
            raise ObjectTooLarge(f"larger than the {max_bytes}-byte limit ({found.meta['size']} bytes)")
        body = bytearray()
        async for chunk in found.stream():
            body += chunk
            if len(body) > max_bytes:
                raise ObjectTooLarge(f"larger than the {max_bytes}-byte limit")
        return bytes(body)

    async def stream(self, key: str, offset: int = 0) -> tuple[int, AsyncIterator[bytes]]:
        """The object's size, and its bytes from `offset` on, as they arrive (a model of gigabytes)."""
        try:
            found = await obstore.get_async(self._store, key, options={"range": {"offset": offset}} if offset else {})
        except (FileNotFoundError, NotFoundError):
            raise ObjectNotFound(f"no object {key!r} in bucket {self.name!r}") from None
        return found.meta["size"], aiter(found.stream(min_chunk_size=1 << 20))
