"""`oss://BUCKET/KEY` and `s3://BUCKET/KEY` inputs: read with the object store's credentials, so a private
bucket works, and held to the same size cap and time limit as an http(s) URL. The address guard does not apply:
the endpoint is the operator's setting, and a caller names only the bucket and key."""

from __future__ import annotations

import asyncio

from agent.buckets.clients import Buckets
from agent.buckets.location import parse_object_url
from agent.inputs.sources import FetchError


async def read_object(buckets: Buckets, url: str, max_bytes: int, timeout: float) -> bytes:
    from agent.buckets.bucket import ObjectNotFound, ObjectTooLarge  # loads the client: only for such inputs

    try:
        location = parse_object_url(url)
    except ValueError as exc:
        raise FetchError(f"invalid object URL: {exc}") from None
    bucket = buckets.bucket(location.cloud, location.bucket)
    try:
        async with asyncio.timeout(timeout):
            return await bucket.get(location.prefix, max_bytes)
    except TimeoutError:
        raise FetchError(f"timed out after {timeout:g} s") from None
    except (ObjectNotFound, ObjectTooLarge) as exc:
        raise FetchError(str(exc)) from None
    except Exception as exc:  # the client's own kinds (denied, unreachable) and the credentials' RuntimeError
        raise FetchError(f"could not be read from the bucket: {str(exc)[:300]}") from None
