"""An API key's secret: `cak_` and 43 URL-safe characters (256 random bits). The store keeps its SHA-256 only.
A plain hash is enough, where a password needs a slow one: there is no dictionary to guess 256 random bits from,
and every request checks its key, so the check must cost microseconds."""

from __future__ import annotations

import hashlib
import re
import secrets

SECRET_PREFIX = "cak_"
SECRET = re.compile(r"cak_[A-Za-z0-9_-]{43}")
SHOWN = 8  # characters of a secret a list shows (the prefix and four more): enough to tell keys apart


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def well_formed(presented: str) -> bool:
    return SECRET.fullmatch(presented) is not None
