"""The double's per-node fault injection (``"_meta": {"double": {"fault": ...}}``).

Every fault that touches sockets first lets the already queued messages out, so a test knows exactly
what the client saw before the fault: everything up to and including the node's ``executing``.
"""

from __future__ import annotations

from collections.abc import Callable

from .hub import Hub

SCRIPTED_FAILURE = "double: scripted failure"


class Faults:
    """``crash``, ``drop_socket``, ``stall_socket`` and ``error``, applied to the prompt's client."""

    def __init__(self, hub: Hub, exit_process: Callable[[int], object]) -> None:
        self._hub = hub
        self._exit = exit_process
        self._actions: dict[str, Callable[[str | None], object]] = {
            "crash": lambda _sid: self._exit(1),
            "drop_socket": hub.drop,
            "stall_socket": hub.stall,
        }

    async def node_started(self, fault: object, client_id: str | None) -> None:
        """Apply a node's scripted fault; ``error`` makes the node raise like a failing custom node."""
        if fault is None:
            return
        if fault == "error":
            raise RuntimeError(SCRIPTED_FAILURE)
        if fault not in self._actions:
            raise ValueError(f"double: unknown fault {fault!r}")
        await self._hub.flush()
        self._actions[str(fault)](client_id)
