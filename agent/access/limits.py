"""A key's limits, held across every instance through the shared store (agent/stores/meters.py, usage.py):

- requests a minute: a token bucket, one take per request the key makes;
- runs at once: a lease per run, taken when the run is admitted and given back when it ends (by the instance
  that ran it: `Leases`, a subscriber of the runs) or is refused; a lease nobody gave back (its instance was
  killed) lapses after `lease_life`;
- GPU seconds a day and a month (UTC): what the ledger holds for the key, checked when a run is admitted; a run
  admitted under the quota runs to its end, so a burst may pass it by the runs it had going.

Over a limit is LimitExceeded, naming the limit, with the seconds until it has room.
"""

from __future__ import annotations

import datetime
import math
import time

from agent.access.principal import ADMIN_NAME, ANONYMOUS_NAME, Principal
from agent.errors import LimitExceeded
from agent.runs.events import RunEnded, RunEvent
from agent.stores.meters import Meters
from agent.stores.usage import UsageLedger

RETRY_AFTER_FULL = 1  # a place frees when one of the key's runs ends: soon, for most runs


def _days(now: float, whole_month: bool) -> list[str]:
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).date()
    first = today.replace(day=1) if whole_month else today
    return [(first + datetime.timedelta(days=n)).isoformat() for n in range((today - first).days + 1)]


def _until_next(now: float, month: bool) -> int:
    """Seconds until the next UTC day (or month) begins: when a quota of that period has room again."""
    today = datetime.datetime.fromtimestamp(now, datetime.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if month:
        following = (today.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    else:
        following = today + datetime.timedelta(days=1)
    return max(1, math.ceil(following.timestamp() - now))


class Limiter:
    def __init__(self, meters: Meters, usage: UsageLedger, lease_life: float) -> None:
        self.meters = meters
        self.usage = usage
        self.lease_life = lease_life

    async def request(self, principal: Principal) -> None:
        """One request of the key's minute (none for a key without that limit)."""
        per_minute = principal.limits.requests_per_minute
        if per_minute is None:
            return
        wait = await self.meters.take(principal.name, per_minute, time.time())
        if wait > 0:
            raise LimitExceeded(f"key {principal.name} made its {per_minute} requests of the minute",
                                retry_after=max(1, math.ceil(wait)), limit="requests_per_minute", key=principal.name)

    async def admit(self, principal: Principal, task_id: str) -> None:
        """Room for one more run: the GPU quotas, then a place among the key's runs at once (held from here)."""
        await self._gpu_quota(principal)
        most = principal.limits.concurrent_runs
        if most is not None and not await self.meters.lease(principal.name, task_id, most,
                                                            time.time() + self.lease_life):
            raise LimitExceeded(f"key {principal.name} has {most} runs going, as many as it may at once",
                                retry_after=RETRY_AFTER_FULL, limit="concurrent_runs", key=principal.name)

    async def _gpu_quota(self, principal: Principal) -> None:
        """Both quotas from one read of the ledger's days (the month's, when a monthly quota is set)."""
        now, limits = time.time(), principal.limits
        if limits.gpu_seconds_per_day is None and limits.gpu_seconds_per_month is None:
            return
        by_day = await self.usage.gpu_seconds(principal.name, _days(now, limits.gpu_seconds_per_month is not None))
        for limit, quota, used, month in (("gpu_seconds_per_day", limits.gpu_seconds_per_day, by_day[-1], False),
                                          ("gpu_seconds_per_month", limits.gpu_seconds_per_month, sum(by_day), True)):
            if quota is not None and used >= quota:
                raise LimitExceeded(f"key {principal.name} used {used:.1f} of its {quota:g} GPU seconds this "
                                    f"{'month' if month else 'day'} (UTC)", retry_after=_until_next(now, month),
                                    limit=limit, key=principal.name, used=round(used, 3))

    async def release(self, owner: str | None, task_id: str) -> None:
        """The run of `task_id` ended or never began: its place is free (the token's runs hold none)."""
        if owner not in (None, ADMIN_NAME, ANONYMOUS_NAME):
            await self.meters.release(owner, task_id)


class Leases:
    """A subscriber of the runs: each run's place among its key's runs at once is given back at its end, before
    its reply, so the key's next run finds the place free."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter

    def notify(self, event: RunEvent) -> None:
        """Only the end matters: see `settle`."""

    async def settle(self, ended: RunEnded) -> None:
        await self.limiter.release(ended.task.key, ended.task.task_id)


