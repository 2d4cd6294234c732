"""The output store: objects put and signed URLs made, through obstore.

obstore (Rust's object_store) is one maintained async client for AWS S3 and OSS's S3 API alike: it streams a
file from disk in parts without reading it into Python, signs GET URLs locally, takes a credential callback
(FC's per-request role credentials) and sends plain bodies, not the `aws-chunked` ones with trailing checksums
that OSS refuses (recent AWS SDKs send those by default). aiobotocore would do the same with botocore's weight
at import and per call. Constructing the client does no I/O.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import obstore
from obstore.store import S3Store

from agent.outputs.credentials import Credentials
from agent.outputs.location import Location

if TYPE_CHECKING:
    from obstore.store import ClientConfig


class ObjectStore:
    def __init__(self, location: Location, endpoint: str | None, region: str, credentials: Credentials,
                 url_ttl: float) -> None:
        self.location = location
        self.credentials = credentials
        self.url_ttl = datetime.timedelta(seconds=url_ttl)
        options: ClientConfig = {"allow_http": bool(endpoint and endpoint.startswith("http://"))}
        self._store = S3Store(location.bucket, region=region, endpoint=endpoint,
                              virtual_hosted_style_request=location.cloud == "oss",
                              credential_provider=credentials, client_options=options)

    async def put(self, key: str, source: Path | bytes, content_type: str) -> None:
        await obstore.put_async(self._store, key, source, attributes={"Content-Type": content_type})

    async def signed_url(self, key: str) -> str:
        return await obstore.sign_async(self._store, "GET", key, self.url_ttl)
