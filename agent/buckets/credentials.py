"""Credentials for object storage, in this order: the settings; the cloud's standard environment (`AWS_*`
for s3://, `ALIBABA_CLOUD_*` for oss://); and on FC the temporary credentials of the function's role, which
FC passes on every request (`x-fc-access-key-id`, `x-fc-access-key-secret`, `x-fc-security-token`) and
renews before they expire: the newest ones seen are used, and the client asks again every few minutes.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from obstore.store import S3Credential

FC_HEADERS = ("x-fc-access-key-id", "x-fc-access-key-secret", "x-fc-security-token")
ENVIRONMENT = {
    "s3": ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    "oss": ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"),
}
RENEWED_AFTER = datetime.timedelta(minutes=5)  # FC's role credentials change; the client asks this often


@dataclass(frozen=True)
class Credential:
    key_id: str
    secret: str
    token: str | None = None


def _found(key_id: str | None, secret: str | None, token: str | None) -> Credential | None:
    return Credential(key_id, secret, token or None) if key_id and secret else None


class Credentials:
    """A cloud's credential provider (obstore calls it whenever the last answer expired)."""

    def __init__(self, cloud: str, explicit: Credential | None, environ: Mapping[str, str]) -> None:
        self.fixed = explicit or _found(*(environ.get(name) for name in ENVIRONMENT[cloud]))
        self._from_fc: Credential | None = None

    def offer(self, headers: Mapping[str, str]) -> None:
        """A request's headers: FC's role credentials, when it sent them."""
        found = _found(*(headers.get(name) for name in FC_HEADERS))
        if found is not None:
            self._from_fc = found

    @property
    def available(self) -> bool:
        return (self.fixed or self._from_fc) is not None

    def __call__(self) -> S3Credential:
        credential = self.fixed or self._from_fc
        if credential is None:
            raise RuntimeError("no credentials for object storage (settings, environment or FC's role)")
        expires = None if self.fixed else datetime.datetime.now(datetime.UTC) + RENEWED_AFTER
        return {"access_key_id": credential.key_id, "secret_access_key": credential.secret,
                "token": credential.token, "expires_at": expires}
