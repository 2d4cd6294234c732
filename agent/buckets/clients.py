"""Every bucket the agent reaches, one client each, with the credentials of its cloud: the output store's, and
those `oss://` / `s3://` inputs name. The settings' endpoint and region apply to all of them; without an
endpoint, OSS is reached at the region's internal endpoint and S3 at AWS."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Self

from pydantic import SecretStr

from agent.buckets.credentials import ENVIRONMENT, Credential, Credentials
from agent.buckets.location import oss_endpoint

if TYPE_CHECKING:  # the client (obstore) is loaded at the first bucket used
    from agent.buckets.bucket import Bucket


@dataclass(frozen=True)
class BucketSettings:
    """What the bucket clients read of the settings (the config module makes it: `Settings.buckets`)."""

    endpoint: str | None
    region: str | None
    key_id: str | None
    key_secret: SecretStr | None
    url_ttl: float


class Buckets:
    def __init__(self, endpoint: str | None, region: str, explicit: Credential | None, environ: Mapping[str, str],
                 url_ttl: float) -> None:
        self.endpoint = endpoint
        self.region = region
        self.url_ttl = url_ttl
        self.credentials = {cloud: Credentials(cloud, explicit, environ) for cloud in ENVIRONMENT}
        self._open: dict[tuple[str, str], Bucket] = {}

    @classmethod
    def from_settings(cls, settings: BucketSettings, environ: Mapping[str, str] = os.environ) -> Self:
        secret = settings.key_secret
        explicit = Credential(settings.key_id, secret.get_secret_value()) if settings.key_id and secret else None
        return cls(settings.endpoint, settings.region or "us-east-1", explicit, environ, settings.url_ttl)

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
