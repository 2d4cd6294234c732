"""`OUTPUT_STORE` (which bucket and key prefix) and `oss://` / `s3://` input URLs, and the endpoint for OSS.

OSS speaks the S3 API at `https://s3.oss-REGION.aliyuncs.com` (`-internal` inside the region, the default on
FC, where traffic to it is free and stays in the VPC), virtual-hosted style; any other S3 (AWS, R2, MinIO) is
`s3://` with `OUTPUT_STORE_ENDPOINT` when it is not AWS itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Location:
    cloud: str  # "s3" or "oss"
    bucket: str
    prefix: str

    def key(self, *parts: str) -> str:
        return "/".join(part.strip("/") for part in (self.prefix, *parts) if part.strip("/"))


BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")  # S3's and OSS's rule: it becomes a host name


def parse_location(raw: str) -> Location:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("s3", "oss") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError("must be s3://BUCKET/PREFIX or oss://BUCKET/PREFIX")
    if not BUCKET_NAME.fullmatch(parts.netloc):
        raise ValueError(f"{parts.netloc!r} is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')")
    return Location(parts.scheme, parts.netloc, parts.path.strip("/"))


def parse_object_url(raw: str) -> Location:
    """An input URL `oss://BUCKET/KEY` or `s3://BUCKET/KEY`: its `prefix` is the object's key."""
    location = parse_location(raw)
    if not location.prefix:
        raise ValueError("names a bucket but no object")
    return Location(location.cloud, location.bucket, unquote(location.prefix))


def oss_endpoint(region: str) -> str:
    """The region's internal endpoint: FC (and ECS) in the region reach it without internet traffic."""
    return f"https://s3.oss-{region}-internal.aliyuncs.com"
