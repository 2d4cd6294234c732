"""`comfyui-agent`: read the settings, open the port at once, run until SIGTERM/SIGINT, leave nothing behind."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import uvloop
from aiohttp import web

from agent import __version__
from agent.api.keys import HOST, RUNS
from agent.app import create_app
from agent.config import ConfigError, Settings, load_settings
from agent.logs import log_event, setup_logging

logger = logging.getLogger("agent")

# Connections the kernel holds for the agent to accept: a burst beyond the default 128 would have its SYNs
# dropped, and each caller would wait a second for TCP to try again before even a refusal could reach it.
LISTEN_BACKLOG = 4096
CLIENT_COMMANDS = ("run", "status", "watch", "cancel", "workflows")  # the first word; the rest are the server's
# A request line or header longer than this is refused by aiohttp's parser itself, in plain text, before any
# handler can answer in the JSON error shape: 8 KiB by default, which a long query (many task options, a data
# URL pasted into one) passes; 64 KiB keeps the refusal for what no client sends.
MAX_LINE_BYTES = 65536


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, max_line_size=MAX_LINE_BYTES,
                           max_field_size=MAX_LINE_BYTES)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True, backlog=LISTEN_BACKLOG)
    await site.start()
    log_event(logger, "agent.listening", version=__version__, mode=settings.agent_mode, host=settings.host,
              port=settings.port, store=settings.store_url.split("://")[0],
              **({"worker": settings.worker_url} if settings.gateway else {"comfyui": settings.comfyui_base_url}))
    signals = asyncio.Queue[signal.Signals]()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, signals.put_nowait, sig)
    log_event(logger, "agent.stopping", signal=(await signals.get()).name)
    if not settings.gateway:  # a gateway holds no run: what it forwards, aiohttp's shutdown lets finish
        await _drain(app, settings, signals)
        await app[HOST].stop()
    await runner.cleanup()
    log_event(logger, "agent.stopped")


async def _drain(app: web.Application, settings: Settings, signals: asyncio.Queue[signal.Signals]) -> None:
    """As /pre-stop does: no new run, open runs get PRESTOP_GRACE seconds; a second signal cuts it short."""
    draining = asyncio.ensure_future(app[RUNS].drain(settings.prestop_grace))
    second = asyncio.ensure_future(signals.get())
    await asyncio.wait({draining, second}, return_when=asyncio.FIRST_COMPLETED)
    for waiting in (draining, second):
        waiting.cancel()


def main(argv: Sequence[str] | None = None) -> None:
    """The server (bare, or `serve`), the gateway (`gateway`), or one of the client's commands (`run`, `status`,
    `watch`, ...)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in CLIENT_COMMANDS:
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
