"""Start the double exactly like a ComfyUI checkout: ``cd tests/comfy_double && python main.py --port N ...``.

Takes ComfyUI's options (unknown ones are ignored, as ``--cpu``). ``--temp-directory D`` puts temporary
files in ``D/temp``, as ComfyUI does; ``--extra-model-paths-config`` files add model folders to its lists.
``DOUBLE_STARTUP_DELAY=<seconds>`` delays listening, to act like a slow ComfyUI start;
``DOUBLE_STARTUP_GATE=<file>`` delays it until that file exists; ``DOUBLE_COMFYUI_VERSION`` names the ComfyUI
release it acts as (``comfy_double.versions``, 0.3.64 by default). SIGTERM and SIGINT stop the server cleanly
(exit status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/, the parent of the package

import yaml
from aiohttp import web

from comfy_double import DoubleConfig, create_app
from comfy_double.versions import OLDEST

log = logging.getLogger("comfy_double")


def _existing_directory(path: str) -> str:
    """ComfyUI refuses a --user-directory that does not exist."""
    if not os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"'{path}' is not a directory.")
    return path


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The subset of ComfyUI's command line that changes what the double does."""
    parser = argparse.ArgumentParser(description="ComfyUI test double")
    parser.add_argument("--listen", default="127.0.0.1", nargs="?", const="0.0.0.0,::")
    parser.add_argument("--port", type=int, default=8188)
    parser.add_argument("--input-directory")
    parser.add_argument("--output-directory")
    parser.add_argument("--temp-directory")
    parser.add_argument("--user-directory", type=_existing_directory)
    parser.add_argument("--preview-method", default="none")
    parser.add_argument("--extra-model-paths-config", nargs="+", action="append", default=[])
    return parser.parse_known_args(argv)[0]


def model_paths(configs: list[list[str]]) -> dict[str, list[Path]]:
    """The model folders of `--extra-model-paths-config` files, as ComfyUI's utils/extra_config.py reads them:
    each section's `base_path` joined to each kind's path (one per line)."""
    found: dict[str, list[Path]] = {}
    for path in (name for group in configs for name in group):
        for section in (yaml.safe_load(Path(path).read_text()) or {}).values():
            base = Path(os.path.expandvars(str(section.get("base_path", ""))))
            for kind, folders in section.items():
                if kind in ("base_path", "is_default") or not isinstance(folders, str):
                    continue
                found.setdefault(kind, []).extend(base / line.strip() for line in folders.splitlines() if line.strip())
    return found


def config_from(args: argparse.Namespace) -> DoubleConfig:
    """Directories as ComfyUI resolves them, relative to the current directory by default."""
    cwd = Path.cwd()
    temp = Path(args.temp_directory).resolve() / "temp" if args.temp_directory else cwd / "temp"
    return DoubleConfig(
        input_dir=Path(args.input_directory) if args.input_directory else cwd / "input",
        output_dir=Path(args.output_directory) if args.output_directory else cwd / "output",
        temp_dir=temp,
        latent_previews=args.preview_method != "none",
        model_paths=model_paths(args.extra_model_paths_config),
        version=os.environ.get("DOUBLE_COMFYUI_VERSION", OLDEST),
    )


async def serve(args: argparse.Namespace, config: DoubleConfig) -> None:
    """Listen until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    delay = float(os.environ.get("DOUBLE_STARTUP_DELAY", "0"))
    if delay > 0 and await _stopped_within(stop, delay):
        return
    gate = os.environ.get("DOUBLE_STARTUP_GATE")
    if gate and await _stopped_before(stop, Path(gate)):
        return
    runner = web.AppRunner(create_app(config), access_log=None)
    await runner.setup()
    log.info("Starting server\n")
    for address in args.listen.split(","):
        await web.TCPSite(runner, address, args.port).start()
        shown = f"[{address}]" if ":" in address else address
        log.info("To see the GUI go to: http://%s:%s", shown, args.port)
    await stop.wait()
    await runner.cleanup()


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True


async def _stopped_before(stop: asyncio.Event, gate: Path) -> bool:
    """Until the file `gate` exists: a start that lasts until the test says, not a number of seconds."""
    while not gate.exists():
        if await _stopped_within(stop, 0.05):
            return True
    return False


def main(argv: list[str]) -> None:
    """Parse, start, serve; the temp directory is emptied at start and at exit, as in ComfyUI."""
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    args = parse_args(argv)
    config = config_from(args)
    log.info("Python version: %s", sys.version)
    log.info("ComfyUI version: %s (comfy_double, pid %s)", config.version, os.getpid())
    shutil.rmtree(config.temp_dir, ignore_errors=True)
    asyncio.run(serve(args, config))
    shutil.rmtree(config.temp_dir, ignore_errors=True)
    log.info("\nStopped server")


if __name__ == "__main__":
    main(sys.argv[1:])
