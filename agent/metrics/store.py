"""The stores, counted: every operation that fails for the store's own trouble (StoreUnavailable) adds to
`store_errors_total`, labelled by operation; a caller's error (a conflict) does not.

One wrapper for every concern: the operations are the abstract methods of the concern's contract, and the label
is the method's name. The counting copy of a concern carries them as instance attributes, so its own helpers
(`get`, `find`, `ended_within`) count through the same `load`, and mypy checks callers against the concern's own
type.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, TypeVar

from agent.errors import StoreUnavailable
from agent.metrics import Metrics
from agent.stores import Stores

C = TypeVar("C")


def _operations(concern: object) -> set[str]:
    """The methods the concern's contracts (ABCs) leave abstract: its operations."""
    return {name for cls in type(concern).__mro__ for name in getattr(cls, "__abstractmethods__", ())}


def _counting(operation: Callable[..., Awaitable[Any]], name: str, metrics: Metrics) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(operation)
    async def counted(*args: Any, **kwargs: Any) -> Any:
        try:
            return await operation(*args, **kwargs)
        except StoreUnavailable:
            metrics.store_errors.labels(name).inc()
            raise

    return counted


def counted(concern: C, metrics: Metrics) -> C:
    """A copy of `concern` whose operations count their failures; the original is left as it was."""
    copied = copy.copy(concern)
    for name in _operations(concern):
        setattr(copied, name, _counting(getattr(concern, name), name, metrics))
    return copied


def metered(stores: Stores, metrics: Metrics) -> Stores:
    return replace(stores, records=counted(stores.records, metrics), log=counted(stores.log, metrics),
                   cancels=counted(stores.cancels, metrics), shared=counted(stores.shared, metrics),
                   jobs=counted(stores.jobs, metrics), idempotency=counted(stores.idempotency, metrics),
                   workflows=counted(stores.workflows, metrics), api_keys=counted(stores.api_keys, metrics),
                   meters=counted(stores.meters, metrics), usage=counted(stores.usage, metrics))
