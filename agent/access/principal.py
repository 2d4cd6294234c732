"""Who a request acts as: the admin token's holder (or anyone, on an agent with no token), or an API key, with
its scopes and limits. A task belongs to the principal that made it (`Task.key`, the principal's name)."""

from __future__ import annotations

from dataclasses import dataclass

from agent.errors import Forbidden
from agent.stores.keys import Limits, Scope

ADMIN_NAME = "admin"
ANONYMOUS_NAME = "anonymous"


@dataclass(frozen=True)
class Principal:
    name: str
    scopes: frozenset[Scope]
    limits: Limits

    @property
    def admin(self) -> bool:
        return Scope.ADMIN in self.scopes

    def sees(self, owner: str | None) -> bool:
        """Whether a task of `owner` exists for this principal: an admin sees every task, a key its own."""
        return self.admin or owner == self.name

    def require(self, scope: Scope) -> None:
        if scope not in self.scopes and not self.admin:
            raise Forbidden(f"key {self.name} may not do this: it needs the `{scope.value}` scope "
                            f"(it has {', '.join(sorted(self.scopes)) or 'none'})", scope=scope.value)


EVERY_SCOPE = frozenset(Scope)
ADMIN = Principal(ADMIN_NAME, EVERY_SCOPE, Limits())
ANONYMOUS = Principal(ANONYMOUS_NAME, EVERY_SCOPE, Limits())  # an agent with no AGENT_TOKEN is open to all
