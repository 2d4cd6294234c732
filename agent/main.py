"""`comfyui-agent`: read the settings, open the port at once, run until SIGTERM/SIGINT, leave nothing behind.

The port opens before the application is imported: FC probes it on every new instance, and the import costs a
second or more of CPU on a busy 2-core machine. Meanwhile agent/api/boot.py answers, and the import runs in a thread
so that it does. Nothing heavy is imported at this module's top for the same reason.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

import uvloop
from aiohttp import web

from agent import __version__
from agent.api import boot
from agent.config import ConfigError, Settings, load_settings
from agent.logs import log_event, setup_logging

if TYPE_CHECKING:
    from agent.runs.service import RunService

logger = logging.getLogger("agent")

# Connections the kernel holds for the agent to accept: a burst beyond the default 128 would have its SYNs
# dropped, and each caller would wait a second for TCP to try again before even a refusal could reach it.
LISTEN_BACKLOG = 4096
# the first word; the rest are the server's
CLIENT_COMMANDS = ("run", "status", "watch", "cancel", "workflows", "keys", "usage")
# A request line or header longer than this is refused by aiohttp's parser itself, in plain text, before any
# handler can answer in the JSON error shape: 8 KiB by default, which a long query (many task options, a data
# URL pasted into one) passes; 64 KiB keeps the refusal for what no client sends.
MAX_LINE_BYTES = 65536

Load = Callable[[Settings], Awaitable[web.Application]]


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound and listening: from here on the kernel accepts connections, which wait for whoever serves them."""
    family, _, _, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                  flags=socket.AI_PASSIVE)[0]
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(address)
    listener.listen(LISTEN_BACKLOG)
    return listener


def app_runner(app: web.Application) -> web.AppRunner:
    """How aiohttp serves the agent; the tests' in-process agents are served by this too (tests/agent_harness.py).
    A handler is not cancelled when its client goes away: a held run goes on to its end and is stored."""
    return web.AppRunner(app, access_log=None, handle_signals=False, max_line_size=MAX_LINE_BYTES,
                         max_field_size=MAX_LINE_BYTES, handler_cancellation=False)


async def load_app(settings: Settings) -> web.Application:
    """The application, its import in a thread so the event loop keeps answering meanwhile."""

    def imported() -> Callable[[Settings], web.Application]:
        from agent.app import create_app

        return create_app

    return (await asyncio.to_thread(imported))(settings)


async def open_port(listener: socket.socket, settings: Settings, load: Load = load_app) -> web.AppRunner:
    """Serve the boot answers on the port until the application is loaded and started, then the application."""
    booting = web.ServerRunner(web.Server(boot.answer), handle_signals=False, access_log=None)
    await booting.setup()
    # a copy of the socket: stopping the boot server closes its copy, while the application accepts on the original
    await web.SockSite(booting, listener.dup()).start()
    try:
        runner = app_runner(await load(settings))
        await runner.setup()
        await web.SockSite(runner, listener).start()
    finally:
        await booting.cleanup()
    return runner


def _browsable(host: str, port: int, path: str) -> str:
    shown = "127.0.0.1" if host in ("", "0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


async def serve(settings: Settings, load: Load = load_app) -> None:
    runner = await open_port(listening_socket(settings.host, settings.port), settings, load)
    log_event(logger, "agent.listening", version=__version__, mode=settings.agent_mode, host=settings.host,
              port=settings.port, store=settings.store_url.split("://")[0],
              page=_browsable(settings.host, settings.port, "/app/"),
              **({"worker": settings.worker_url} if settings.gateway else {"comfyui": settings.comfyui_base_url}))
    signals = asyncio.Queue[signal.Signals]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    log_event(logger, "agent.stopping", signal=(await signals.get()).name)
    if not settings.gateway:  # a gateway holds no run: what it forwards, aiohttp's shutdown lets finish
        from agent.api.services import WORKER

        worker = runner.app[WORKER]
        await _drain(worker.runs, settings, signals)
        await worker.host.stop()
    await runner.cleanup()
    log_event(logger, "agent.stopped")


async def _drain(runs: RunService, settings: Settings, signals: asyncio.Queue[signal.Signals]) -> None:
    """As /pre-stop does: no new run, open runs get PRESTOP_GRACE seconds; a second signal cuts it short."""
    draining = asyncio.ensure_future(runs.drain(settings.prestop_grace))
    second = asyncio.ensure_future(signals.get())
    await asyncio.wait({draining, second}, return_when=asyncio.FIRST_COMPLETED)
    for waiting in (draining, second):
        waiting.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    """The server (bare, or `serve`), the gateway (`gateway`), or one of the client's commands (`run`, `status`,
    `watch`, ...). `--help` alone is the client's: it lists every command; `serve --help` lists the settings."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in (*CLIENT_COMMANDS, "-h", "--help"):
        from agent.client.cli import main as command  # the server never loads the client, nor the client it

        command(args)
        return
    if args and args[0] == "serve":
        args = args[1:]
    elif args and args[0] == "gateway":
        args = ["--agent-mode", "gateway", *args[1:]]
    try:
        settings = load_settings(args)
    except ConfigError as exc:
        print(f"comfyui-agent: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log_level, settings.log_format)
    uvloop.run(serve(settings))
