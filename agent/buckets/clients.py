"""Every bucket the agent reaches, one client each, with the credentials of its cloud: the output store's, and
those `oss://` / `s3://` inputs name. The settings' endpoint and region apply to all of them; without an
endpoint, OSS is reached at the region's internal endpoint and S3 at AWS."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Self

from agent.buckets.credentials import ENVIRONMENT, Credential, Credentials
from agent.buckets.location import oss_endpoint

if TYPE_CHECKING:  # the client (obstore) is loaded at the first bucket used
    from agent.buckets.bucket import Bucket
    from agent.config import Settings


class Buckets:
    def __init__(self, endpoint: str | None, region: str, explicit: Credential | None, environ: Mapping[str, str],
                 url_ttl: float) -> None:
        self.endpoint = endpoint
        self.region = region
        self.url_ttl = url_ttl
        self.credentials = {cloud: Credentials(cloud, explicit, environ) for cloud in ENVIRONMENT}
        self._open: dict[tuple[str, str], Bucket] = {}

    @classmethod
    def from_settings(cls, settings: Settings, environ: Mapping[str, str] = os.environ) -> Self:
        secret = settings.output_store_key_secret
        explicit = (Credential(settings.output_store_key_id, secret.get_secret_value())
                    if settings.output_store_key_id and secret else None)
        return cls(settings.output_store_endpoint, settings.output_store_region or "us-east-1", explicit, environ,
                   settings.output_url_ttl)

    def offer(self, headers: Mapping[str, str]) -> None:
        """A request's headers, which on FC carry the function role's current credentials."""
        for credentials in self.credentials.values():
            credentials.offer(headers)

    def bucket(self, cloud: str, name: str) -> Bucket:
        if (cloud, name) not in self._open:
            from agent.buckets.bucket import Bucket

            endpoint = self.endpoint or (oss_endpoint(self.region) if cloud == "oss" else None)
            self._open[cloud, name] = Bucket(cloud, name, endpoint=endpoint, region=self.region,
                                             credentials=self.credentials[cloud], url_ttl=self.url_ttl)
        return self._open[cloud, name]
