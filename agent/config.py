"""The one source of settings: every knob is an environment variable with a matching command-line flag.

Each setting is declared once (`SETTINGS`); the flag parser, the environment reader, the defaults and the
validation all come from that table, so a setting cannot exist in one place and be missing in another.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

MiB = 1024 * 1024


class ConfigError(ValueError):
    """A setting has a value the agent cannot run with; the message names the setting."""


def _int_in(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            value = low - 1
        if not low <= value <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return value

    return parse


def _positive_float(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _bool(raw: str) -> bool:
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("must be true or false")


def _http_url(raw: str) -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError("must be an http(s) URL such as http://127.0.0.1:8188")
    return raw.strip().rstrip("/")


def _store_url(raw: str) -> str:
    parts = urlsplit(raw)
    if parts.scheme == "memory":
        return raw
    if parts.scheme == "file" and parts.path:
        return raw
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        return raw
    raise ValueError("must be file://DIR, redis://HOST:PORT/DB, rediss://... or memory://")


def _loaders(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        node_class, _, input_name = item.partition(":")
        if not node_class.strip() or not input_name.strip():
            raise ValueError("must be a comma-separated list of NodeClass:input_name")
        pairs.append((node_class.strip(), input_name.strip()))
    return tuple(pairs)


def _hosts(raw: str) -> frozenset[str]:
    return frozenset(host.strip().lower().rstrip(".") for host in raw.split(",") if host.strip())


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and urlsplit(origin).scheme not in ("http", "https"):
            raise ValueError("must be * or a comma-separated list of origins such as https://app.example.com")
    return origins


def _file(raw: str) -> Path:
    path = Path(raw.strip())
    if not path.is_file():
        raise ValueError("must name an existing file")
    return path


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be debug, info, warning or error")
    return level


@dataclass(frozen=True)
class Setting:
    """One knob: its field name, environment variable(s), parser, default and help line."""

    field: str
    env: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.env[0].lower().replace("_", "-")


SETTINGS: tuple[Setting, ...] = (
    Setting("host", ("AGENT_HOST",), str.strip, "address the agent listens on (default 0.0.0.0)"),
    Setting(
        "port",
        ("AGENT_PORT", "FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT"),
        _int_in(1, 65535),
        "port the agent listens on (default 9000)",
    ),
    Setting("comfyui_dir", ("COMFYUI_DIR",), Path, "ComfyUI checkout to launch (default /comfyui)"),
    Setting("comfyui_python", ("COMFYUI_PYTHON",), str.strip, "interpreter for ComfyUI (default: this one)"),
    Setting("comfyui_port", ("COMFYUI_PORT",), _int_in(1, 65535), "ComfyUI's private port on 127.0.0.1"),
    Setting("comfyui_args", ("COMFYUI_ARGS", "EXTRA_ARGS"), shlex.split, "extra ComfyUI arguments"),
    Setting("comfyui_url", ("COMFYUI_URL",), _http_url, "use this running ComfyUI instead of launching one"),
    Setting("nas_dir", ("NAS_DIR",), Path, "shared folder for ComfyUI files and the task store"),
    Setting("task_store", ("TASK_STORE",), _store_url, "task store URL: file://DIR, redis://HOST:PORT/DB, memory://"),
    Setting("task_ttl", ("TASK_TTL",), _int_in(1, 10 * 365 * 86400), "seconds a finished task is kept"),
    Setting("task_heartbeat", ("TASK_HEARTBEAT",), _positive_float,
            "seconds between an owner's writes of a running task; silent for 6 of them, it reads as lost"),
    Setting("run_timeout", ("RUN_TIMEOUT",), _positive_float, "seconds a run may take"),
    Setting("max_body_bytes", ("MAX_BODY_BYTES",), _int_in(1024, 1 << 40), "request body cap in bytes"),
    Setting("input_max_bytes", ("INPUT_MAX_BYTES",), _int_in(1, 1 << 40), "one input image cap in bytes"),
    Setting("url_allow_private", ("URL_ALLOW_PRIVATE",), _bool, "allow input URLs on private addresses"),
    Setting("url_allow_hosts", ("URL_ALLOW_HOSTS",), _hosts,
            "host names whose input URLs may resolve to private addresses (local testing)"),
    Setting("input_fetch_timeout", ("INPUT_FETCH_TIMEOUT",), _positive_float,
            "seconds one input URL may take to download, redirects included"),
    Setting("image_loaders", ("IMAGE_LOADERS",), _loaders,
            "NodeClass:input pairs whose input may hold base64, a data URL or an http(s) URL of an image"),
    Setting("media_loaders", ("MEDIA_LOADERS",), _loaders,
            "NodeClass:input pairs whose input may hold a data URL or an http(s) URL of a video or audio file"),
    Setting("agent_token", ("AGENT_TOKEN",), SecretStr, "bearer token required on every route but /healthz"),
    Setting("cors_origins", ("CORS_ORIGINS",), _origins,
            "origins whose pages may call the agent: a list (credentials allowed), or * (any, without credentials)"),
    Setting("initialize_timeout", ("INITIALIZE_TIMEOUT",), _positive_float,
            "seconds POST /initialize waits for ComfyUI (and the warm-up prompt)"),
    Setting("warmup_prompt", ("WARMUP_PROMPT",), _file, "API-format prompt file POST /initialize runs once"),
    Setting("prestop_grace", ("PRESTOP_GRACE",), _positive_float,
            "seconds GET /pre-stop (and SIGTERM) let open runs finish"),
    Setting("workflows_dir", ("WORKFLOWS_DIR",), Path,
            "example workflows offered by the web page (default: COMFYUI_DIR/workflows, else this checkout's)"),
    Setting("log_level", ("LOG_LEVEL",), _log_level, "debug, info, warning or error"),
    Setting(
        "ws_stall_timeout",
        ("WS_STALL_TIMEOUT",),
        _positive_float,
        "seconds of websocket silence after which the run is re-checked over HTTP on a fresh socket",
    ),
    Setting(
        "comfyui_start_timeout",
        ("COMFYUI_START_TIMEOUT",),
        _positive_float,
        "seconds a ComfyUI start may take before it is killed and started again",
    ),
    Setting(
        "restart_backoff_max",
        ("RESTART_BACKOFF_MAX",),
        _positive_float,
        "longest wait between ComfyUI restarts, in seconds",
    ),
    Setting("stop_grace", ("STOP_GRACE",), _positive_float, "seconds ComfyUI gets to exit before SIGKILL"),
)


class Settings(BaseModel):
    """Validated settings; immutable so every module sees the same values."""

    model_config = ConfigDict(frozen=True)

    host: str = "0.0.0.0"
    port: int = 9000
    comfyui_dir: Path = Path("/comfyui")
    comfyui_python: str = sys.executable
    comfyui_port: int = 8188
    comfyui_args: tuple[str, ...] = ()
    comfyui_url: str | None = None
    nas_dir: Path | None = None
    task_store: str = ""
    task_ttl: int = 604800
    task_heartbeat: float = 5.0
    run_timeout: float = 3600.0
    max_body_bytes: int = 32 * MiB
    input_max_bytes: int = 20 * MiB
    url_allow_private: bool = False
    url_allow_hosts: frozenset[str] = frozenset()
    input_fetch_timeout: float = 60.0
    image_loaders: tuple[tuple[str, str], ...] = (("LoadImage", "image"), ("LoadImageMask", "image"))
    media_loaders: tuple[tuple[str, str], ...] = (
        ("LoadVideo", "file"), ("VHS_LoadVideo", "video"), ("LoadAudio", "audio"), ("VHS_LoadAudioUpload", "audio"))
    agent_token: SecretStr | None = None
    cors_origins: tuple[str, ...] = ()
    initialize_timeout: float = 600.0
    warmup_prompt: Path | None = None
    prestop_grace: float = 60.0
    workflows_dir: Path | None = None
    log_level: str = "INFO"
    ws_stall_timeout: float = 30.0
    comfyui_start_timeout: float = 600.0
    restart_backoff_max: float = 30.0
    stop_grace: float = 10.0

    @property
    def launches_comfyui(self) -> bool:
        return self.comfyui_url is None

    @property
    def comfyui_base_url(self) -> str:
        return self.comfyui_url or f"http://127.0.0.1:{self.comfyui_port}"

    @property
    def workflows_path(self) -> Path | None:
        """Where the page's example workflows are: the setting, the image's copy, or this source checkout's."""
        checkout = Path(__file__).resolve().parent.parent / "comfyui" / "workflows"
        for candidate in (self.workflows_dir, self.comfyui_dir / "workflows", checkout):
            if candidate is not None and candidate.is_dir():
                return candidate
        return None

    @property
    def stale_after(self) -> float:
        """An unfinished task whose owner was silent this long reads as failed (the instance is gone)."""
        return self.task_heartbeat * 6

    @property
    def store_url(self) -> str:
        if self.task_store:
            return self.task_store
        base = self.nas_dir / "tasks" if self.nas_dir else Path("data/tasks").absolute()
        return f"file://{base}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyui-agent",
        description="Serve ComfyUI as a stateless HTTP API. Every flag also reads from its environment variable.",
    )
    for setting in SETTINGS:
        names = " / ".join(setting.env)
        parser.add_argument(setting.flag, dest=setting.field, metavar=setting.env[0], help=f"{setting.help} [{names}]")
    return parser


def _raw_values(argv: Sequence[str], environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Raw string per field with the name it came from; a flag beats the environment."""
    flags = vars(_parser().parse_args(list(argv)))
    raw: dict[str, tuple[str, str]] = {}
    for setting in SETTINGS:
        if flags.get(setting.field) is not None:
            raw[setting.field] = (setting.flag, flags[setting.field])
            continue
        for name in setting.env:
            if environ.get(name, "") != "":
                raw[setting.field] = (name, environ[name])
                break
    return raw


def load_settings(argv: Sequence[str] = (), environ: Mapping[str, str] | None = None) -> Settings:
    """Read flags and environment; raise ConfigError naming the first bad setting."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    by_field = {setting.field: setting for setting in SETTINGS}
    for field, (source, raw) in _raw_values(argv, env).items():
        try:
            values[field] = by_field[field].parse(raw)
        except ValueError as exc:
            raise ConfigError(f"invalid setting {source}={raw!r}: {exc}") from None
    if "comfyui_args" in values:
        values["comfyui_args"] = tuple(values["comfyui_args"])
    settings = Settings(**values)
    _check_launchable(settings)
    return settings


def _check_launchable(settings: Settings) -> None:
    """Fail at startup, not at the first request, when there is no ComfyUI to launch."""
    if settings.launches_comfyui and not (settings.comfyui_dir / "main.py").is_file():
        raise ConfigError(
            f"invalid setting COMFYUI_DIR={str(settings.comfyui_dir)!r}: no main.py there "
            "(point it at a ComfyUI checkout, or set COMFYUI_URL to use a running ComfyUI)"
        )
