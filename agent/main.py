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
from agent.api.keys import HOST
from agent.app import create_app
from agent.config import ConfigError, Settings, load_settings
from agent.logs import log_event, setup_logging

logger = logging.getLogger("agent")


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_address=True)
    await site.start()
    log_event(logger, "agent.listening", version=__version__, host=settings.host, port=settings.port,
              comfyui=settings.comfyui_base_url, store=settings.store_url.split("://")[0])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log_event(logger, "agent.stopping")
    await app[HOST].stop()  # runs in flight end now instead of holding the shutdown
    await runner.cleanup()
    log_event(logger, "agent.stopped")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        settings = load_settings(sys.argv[1:] if argv is None else argv)
    except ConfigError as exc:
        print(f"comfyui-agent: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    setup_logging(settings.log_level)
    uvloop.run(serve(settings))
