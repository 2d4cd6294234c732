"""`OUTPUT_STORE`: which bucket and key prefix, and the endpoint that reaches it.

OSS speaks the S3 API at `https://s3.oss-REGION.aliyuncs.com` (`-internal` inside the region, the default on
FC, where traffic to it is free and stays in the VPC), virtual-hosted style; any other S3 (AWS, R2, MinIO) is
`s3://` with `OUTPUT_STORE_ENDPOINT` when it is not AWS itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Location:
    cloud: str  # "s3" or "oss"
    bucket: str
    prefix: str

    def key(self, *parts: str) -> str:
        return "/".join(part.strip("/") for part in (self.prefix, *parts) if part.strip("/"))


def parse_location(raw: str) -> Location:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("s3", "oss") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be s3://BUCKET/PREFIX or oss://BUCKET/PREFIX")
    return Location(parts.scheme, parts.netloc, parts.path.strip("/"))


def oss_endpoint(region: str) -> str:
    """The region's internal endpoint: FC (and ECS) in the region reach it without internet traffic."""
    return f"https://s3.oss-{region}-internal.aliyuncs.com"
