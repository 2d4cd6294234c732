"""The keys' book: who a presented secret is, and the keys an admin makes, lists and revokes.

A key found in the store is trusted for `cache_seconds` (an instance then answers from memory, so a key costs a
store read per few seconds, not per request); a revocation is therefore seen everywhere within that. Nothing is
remembered of a secret that opened nothing: a loop of wrong guesses could otherwise fill memory, and each costs
one store read, as a right one does, so a guesser learns nothing from the time an answer takes.
"""

from __future__ import annotations

import hmac
import logging
import time

from pydantic import SecretStr

from agent.access.principal import ADMIN, ANONYMOUS, Principal
from agent.access.secrets import SHOWN, digest, new_secret, well_formed
from agent.errors import KeyConflict, NotFound, RequestParamsError, Unauthorized
from agent.logs import log_event
from agent.stores.keys import KEY_NAME, RESERVED_NAMES, ApiKeys, KeyRecord, Limits, Scope

logger = logging.getLogger("agent.keys")

CACHED_KEYS = 10_000  # live keys remembered at most; more are read again


def principal_of(record: KeyRecord) -> Principal:
    return Principal(record.name, frozenset(record.scopes), record.limits)


class Keys:
    def __init__(self, store: ApiKeys, token: SecretStr | None, cache_seconds: float) -> None:
        self.store = store
        self.token = None if token is None else token.get_secret_value().encode()
        self.cache_seconds = cache_seconds
        self._known: dict[str, tuple[Principal, float]] = {}  # digest: (principal, trusted until)

    @property
    def open(self) -> bool:
        """No AGENT_TOKEN: anyone may call (a key presented still names its own lane)."""
        return self.token is None

    async def principal(self, presented: str | None) -> Principal:
        """Who `presented` is; Unauthorized when it opens nothing."""
        if presented is not None and self.token is not None and hmac.compare_digest(presented.encode(), self.token):
            return ADMIN
        if presented is not None and well_formed(presented):
            return await self._key(presented)
        if self.open:
            return ANONYMOUS
        raise Unauthorized("a valid bearer token is required (Authorization: Bearer <AGENT_TOKEN or an API key>)")

    async def _key(self, secret: str) -> Principal:
        hashed = digest(secret)
        known = self._known.get(hashed)
        if known is not None and known[1] > time.monotonic():
            return known[0]
        record = await self.store.by_digest(hashed)
        if record is None or not hmac.compare_digest(record.digest, hashed):
            self._known.pop(hashed, None)
            raise Unauthorized("this API key is not valid: unknown or revoked")
        if len(self._known) >= CACHED_KEYS:
            self._known.clear()
        principal = principal_of(record)
        self._known[hashed] = (principal, time.monotonic() + self.cache_seconds)
        return principal

    async def create(self, name: str, scopes: list[Scope], limits: Limits) -> tuple[KeyRecord, str]:
        """A new key and its secret, which is shown this once and kept nowhere."""
        if KEY_NAME.fullmatch(name) is None or name in RESERVED_NAMES:
            raise RequestParamsError(f"a key's name is 1 to 64 of a-z, 0-9, '_' and '-', starting with a letter or "
                                     f"digit, and none of {', '.join(sorted(RESERVED_NAMES))}")
        if not scopes:
            raise RequestParamsError("a key needs at least one scope: run, read or admin")
        secret = new_secret()
        record = KeyRecord(name=name, digest=digest(secret), prefix=secret[:SHOWN], scopes=sorted(set(scopes)),
                           limits=limits)
        if not await self.store.add(record):
            raise KeyConflict(f"a key named {name} exists already (a revoked key's name stays taken)", name=name)
        log_event(logger, "key.created", key=name, scopes=",".join(record.scopes))
        return record, secret

    async def listed(self) -> list[KeyRecord]:
        return await self.store.listed()

    async def revoke(self, name: str) -> KeyRecord:
        record = await self.store.revoke(name, time.time())
        if record is None:
            raise NotFound(f"no key named {name[:100]}")
        self._known = {hashed: known for hashed, known in self._known.items() if known[0].name != name}
        log_event(logger, "key.revoked", key=name)
        return record
