"""The one source of settings: every knob is an environment variable with a matching command-line flag.

Each setting is declared once, as a field of `Settings` with its default and an `Env` saying how it is read; the
flag parser, the environment reader, the validation and the documented table all come from those declarations, so
a setting cannot exist in one place and be missing in another.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, SecretStr

from agent.buckets.clients import BucketSettings
from agent.buckets.location import parse_location
from agent.model_folders import MODEL_LOADERS

MiB = 1024 * 1024
NAME_OR_FILE = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a workflow's name (agent/workflows/definition.py's NAME)


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


def check_webhook_url(raw: str) -> str:
    """A webhook's address: plain http(s) to a host, no credentials in it (its address is checked when sent)."""
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (use WEBHOOK_SECRET to sign instead)")
    return raw.strip()


def _webhook_secret(raw: str) -> SecretStr:
    """Standard Webhooks' secret: `whsec_` and base64 (the receiver's library reads the same form)."""
    from standardwebhooks import Webhook

    try:
        Webhook(raw.strip())
    except Exception as exc:  # the library raises its own kinds and binascii's for bad base64
        raise ValueError("must be `whsec_` followed by base64 (Standard Webhooks' form)") from exc
    return SecretStr(raw.strip())


def _output_store(raw: str) -> str:
    parse_location(raw)
    return raw.strip()


def _loaders(raw: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        node_class, _, input_name = item.partition(":")
        if not node_class.strip() or not input_name.strip():
            raise ValueError("must be a comma-separated list of NodeClass:input_name")
        pairs.append((node_class.strip(), input_name.strip()))
    return tuple(pairs)


def _model_loaders(raw: str) -> tuple[tuple[str, str, str], ...]:
    triples = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        parts = [part.strip() for part in item.split(":")]
        if len(parts) != 3 or not all(parts) or not re.fullmatch(r"[A-Za-z0-9_-]+", parts[2]):
            raise ValueError("must be a comma-separated list of NodeClass:input_name:models_folder")
        triples.append((parts[0], parts[1], parts[2]))
    return tuple(triples)


def _host_tokens(raw: str) -> tuple[tuple[str, SecretStr], ...]:
    pairs = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        host, equals, token = item.partition("=")
        if not equals or not host.strip() or not token.strip() or "/" in host:
            raise ValueError("must be a comma-separated list of host=token")
        pairs.append((host.strip().lower().rstrip("."), SecretStr(token.strip())))
    return tuple(pairs)


def _hosts(raw: str) -> frozenset[str]:
    return frozenset(host.strip().lower().rstrip(".") for host in raw.split(",") if host.strip())


def _origins(raw: str) -> tuple[str, ...]:
    origins = tuple(origin.strip().rstrip("/") for origin in raw.split(",") if origin.strip())
    for origin in origins:
        if origin != "*" and urlsplit(origin).scheme not in ("http", "https"):
            raise ValueError("must be * or a comma-separated list of origins such as https://app.example.com")
    return origins


def _arguments(raw: str) -> tuple[str, ...]:
    return tuple(shlex.split(raw))


def _workflow_or_file(raw: str) -> str:
    value = raw.strip()
    if not NAME_OR_FILE.fullmatch(value) and not Path(value).is_file():
        raise ValueError("must be a workflow's name or name an existing file")
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    """A word from a fixed list, in any case."""
    def parse(raw: str) -> str:
        word = raw.strip().lower()
        if word not in choices:
            raise ValueError(f"must be {', '.join(choices[:-1])} or {choices[-1]}")
        return word

    return parse


def _log_level(raw: str) -> str:
    level = raw.strip().upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ValueError("must be debug, info, warning or error")
    return level


@dataclass(frozen=True)
class Env:
    """How one setting is read: its variables (the first also names the flag), parser and help line. The default
    is the field's own; `shown` replaces it in the docs when it is computed from other settings."""

    names: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str
    shown: str | None = None


def env(*names: str, parse: Callable[[str], Any] = str.strip, help: str, shown: str | None = None) -> Env:
    return Env(names, parse, help, shown)


def _shown(value: Any) -> str:
    """A default as the docs write it: the value a user would type, in backticks; `unset` and `empty` as words."""
    if value is None:
        return "unset"
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, tuple | frozenset):
        text = ",".join(":".join(item) if isinstance(item, tuple) else str(item) for item in value)
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return f"`{text}`" if text else "empty"


@dataclass(frozen=True)
class AddressRule:
    """Which addresses a URL the agent fetches or calls may reach: the address guard's settings."""

    allow_private: bool
    allow_hosts: frozenset[str]


@dataclass(frozen=True)
class LaunchSettings:
    """What the supervisor reads: how ComfyUI is started, where its folders are, how it is stopped."""

    interpreter: str
    comfyui_dir: Path
    port: int
    device: str
    args: tuple[str, ...]
    nas_dir: Path | None
    output_dir: Path
    temp_dir: Path | None
    user_dir: Path
    start_timeout: float
    stop_grace: float
    restart_backoff_max: float


@dataclass(frozen=True)
class InputSettings:
    """What the input packages read: the loaders that take files, the cap on one, how URLs are fetched."""

    max_bytes: int
    fetch_timeout: float
    image_loaders: tuple[tuple[str, str], ...]
    media_loaders: tuple[tuple[str, str], ...]
    addresses: AddressRule


@dataclass(frozen=True)
class ModelSettings:
    """What models fetched by URL read: where they go, the cap on one, how long a source may stall, the tokens
    per host, the loaders that take a model (the built-in ones and `MODEL_LOADERS`), the address guard."""

    folder: Path | None
    max_bytes: int
    cache_bytes: int | None
    stall_timeout: float
    tokens: dict[str, SecretStr]
    loaders: dict[str, str]
    addresses: AddressRule


@dataclass(frozen=True)
class WebhookSettings:
    """What webhooks read: the operator's default receiver, the signing secret, the patience, the guard."""

    default_url: str | None
    secret: SecretStr | None
    timeout: float
    addresses: AddressRule


class Settings(BaseModel):
    """Validated settings; immutable so every module sees the same values. Each field is declared once, here:
    its type, its default and how it is read (`Env`); the flags, the environment reader and the documented
    table (README, OpenAPI) all come from these declarations, and an unknown field is refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    agent_mode: Annotated[str, env("AGENT_MODE", parse=_one_of("worker", "gateway"), help=(
        "`worker`: the agent with its ComfyUI; `gateway` (also `comfyui-agent gateway`): no ComfyUI, tasks, "
        "the page and workflows served from the shared store, runs handed to `WORKER_URL`"))] = "worker"
    host: Annotated[str, env("AGENT_HOST", help="address the agent listens on")] = "0.0.0.0"
    port: Annotated[int, env("AGENT_PORT", "FC_CUSTOM_LISTEN_PORT", "FC_SERVER_PORT", parse=_int_in(1, 65535),
                             help="port the agent listens on (FC sets FC_CUSTOM_LISTEN_PORT)")] = 9000
    comfyui_dir: Annotated[Path, env("COMFYUI_DIR", parse=Path, help=(
        "ComfyUI checkout; the agent runs `COMFYUI_PYTHON main.py --listen 127.0.0.1 --port COMFYUI_PORT ...` "
        "there"))] = Path("/comfyui")
    comfyui_python: Annotated[str | None, env("COMFYUI_PYTHON", help="interpreter for ComfyUI", shown=(
        "`$COMFYUI_DIR/.venv/bin/python` when there is one (comfy-cli makes it), else the agent's own"))] = None
    comfyui_device: Annotated[str, env("COMFYUI_DEVICE", parse=_one_of("auto", "gpu", "cpu"), help=(
        "`auto`: ComfyUI gets `--cpu` when the machine shows no GPU (no NVIDIA or AMD device, not Apple silicon); "
        "`gpu`: never added; `cpu`: always"))] = "auto"
    comfyui_port: Annotated[int, env("COMFYUI_PORT", parse=_int_in(1, 65535),
                                     help="ComfyUI's private port on 127.0.0.1")] = 8188
    comfyui_args: Annotated[tuple[str, ...], env("COMFYUI_ARGS", "EXTRA_ARGS", parse=_arguments,
                                                 help="extra ComfyUI arguments, e.g. `--cpu`")] = ()
    comfyui_url: Annotated[str | None, env("COMFYUI_URL", parse=_http_url,
                                           help="attach to a running ComfyUI instead of launching one")] = None
    nas_dir: Annotated[Path | None, env("NAS_DIR", parse=Path, help=(
        "shared folder: ComfyUI's `input/` and `output/` and the task store live under it"))] = None
    comfyui_output_dir: Annotated[Path | None, env("COMFYUI_OUTPUT_DIR", parse=Path, shown=(
        "`$NAS_DIR/output`, else ComfyUI's own `output/`"), help=(
        "ComfyUI's output folder (its `--output-directory`); the agent reads outputs there rather than through "
        "`/view`. With `COMFYUI_URL`, set it only when that ComfyUI writes to a folder this machine sees"))] = None
    comfyui_temp_dir: Annotated[Path | None, env("COMFYUI_TEMP_DIR", parse=Path, shown="ComfyUI's own", help=(
        "ComfyUI's `--temp-directory` (previews go to its `temp/`, which ComfyUI empties at each start: never a "
        "folder that instances share)"))] = None
    comfyui_user_dir: Annotated[Path | None, env("COMFYUI_USER_DIR", parse=Path, shown=(
        "ComfyUI's own `user/`; a folder of the system's temp folder when that `user/` is under `NAS_DIR`"), help=(
        "ComfyUI's `--user-directory` (its settings, the editor's saved workflows): each instance's own, since "
        "ComfyUI writes there without locks"))] = None
    output_store: Annotated[str | None, env("OUTPUT_STORE", parse=_output_store, help=(
        "`s3://BUCKET/PREFIX` (AWS S3, R2, MinIO, any S3 API) or `oss://BUCKET/PREFIX` (Alibaba Cloud OSS): "
        "outputs are uploaded there and answered as signed URLs"))] = None
    output_store_endpoint: Annotated[str | None, env("OUTPUT_STORE_ENDPOINT", parse=_http_url, shown=(
        "AWS's for `s3://`; for `oss://`, the region's internal one "
        "(`https://s3.oss-REGION-internal.aliyuncs.com`)"), help=(
        "the object store's endpoint, for the output store and `oss://` / `s3://` inputs alike"))] = None
    output_store_region: Annotated[str | None, env("OUTPUT_STORE_REGION", "FC_REGION", help=(
        "the object store's region (FC sets FC_REGION)"), shown="FC's region, else `us-east-1`")] = None
    output_store_key_id: Annotated[str | None, env("OUTPUT_STORE_ACCESS_KEY_ID", shown=(
        "`AWS_ACCESS_KEY_ID` / `ALIBABA_CLOUD_ACCESS_KEY_ID`, else FC's role"), help=(
        "the object store's access key id"))] = None
    output_store_key_secret: Annotated[SecretStr | None, env("OUTPUT_STORE_ACCESS_KEY_SECRET", parse=SecretStr,
                                                             shown="as the key id", help=(
        "the object store's secret key"))] = None
    output_url_ttl: Annotated[int, env("OUTPUT_URL_TTL", parse=_int_in(1, 7 * 86400), help=(
        "seconds a signed output URL stays valid (at most a week, SigV4's limit)"))] = 86400
    keep_local_outputs: Annotated[bool, env("KEEP_LOCAL_OUTPUTS", parse=_bool, help=(
        "keep ComfyUI's own copy of an output once it is in the output store, and keep ComfyUI's output and "
        "temp folders unswept (otherwise images, videos and audio there older than `TASK_TTL` are removed)"))] = False
    assets_dir: Annotated[Path | None, env("ASSETS_DIR", parse=Path, shown="`$NAS_DIR/assets`, else "
                                           "`./data/assets`", help=(
        "where uploaded assets (Comfy API v2's `/api/v2/assets`) keep their bytes when there is no "
        "`OUTPUT_STORE` (with one, they go to its bucket under `assets/`); every instance must see it"))] = None
    task_store: Annotated[str, env("TASK_STORE", parse=_store_url, shown="`file://$NAS_DIR/tasks`, else "
                                   "`file://./data/tasks`", help=(
        "`file://DIR`, `redis://HOST:PORT/DB` (or `rediss://`), `memory://` (one instance only)"))] = ""
    task_ttl: Annotated[int, env("TASK_TTL", parse=_int_in(1, 10 * 365 * 86400),
                                 help="seconds a finished task is kept")] = 604800
    task_heartbeat: Annotated[float, env("TASK_HEARTBEAT", parse=_positive_float, help=(
        "seconds between an owner's writes of a running task; silent for 6 of them, it reads as lost"))] = 5.0
    run_timeout: Annotated[float, env("RUN_TIMEOUT", parse=_positive_float,
                                      help="seconds a run may take, queueing in ComfyUI included")] = 3600.0
    max_active_runs: Annotated[int, env("MAX_ACTIVE_RUNS", parse=_int_in(1, 100_000), help=(
        "runs in flight at once on this instance (inputs, ComfyUI's queue, ComfyUI); a held run beyond it is "
        "answered `429 Overloaded` at once, and `/readyz` says the instance is full"))] = 256
    max_waiting_runs: Annotated[int, env("MAX_WAITING_RUNS", parse=_int_in(0, 1_000_000), help=(
        "background runs (`Prefer: respond-async`) that wait in the agent, holding no connection, while "
        "`MAX_ACTIVE_RUNS` are in flight; beyond it they are refused too"))] = 4096
    max_event_streams: Annotated[int, env("MAX_EVENT_STREAMS", parse=_int_in(0, 100_000), help=(
        "event streams (`GET /api/tasks/{id}/events`) one instance serves at once; beyond it they are refused "
        "with 429 (each polls the store; on Redis each holds a connection)"))] = 64
    max_body_bytes: Annotated[int, env("MAX_BODY_BYTES", parse=_int_in(1024, 1 << 40), shown="`33554432` (32 MiB)",
                                       help="request body cap in bytes (FC's cap on a synchronous call)")] = 32 * MiB
    input_max_bytes: Annotated[int, env("INPUT_MAX_BYTES", parse=_int_in(1, 1 << 40), shown="`20971520` (20 MiB)",
                                        help="cap on one input file, in bytes")] = 20 * MiB
    url_allow_private: Annotated[bool, env("URL_ALLOW_PRIVATE", parse=_bool, help=(
        "allow input URLs on private addresses (local testing only)"))] = False
    url_allow_hosts: Annotated[frozenset[str], env("URL_ALLOW_HOSTS", parse=_hosts, help=(
        "host names whose input URLs may resolve to private addresses (local testing)"))] = frozenset()
    input_fetch_timeout: Annotated[float, env("INPUT_FETCH_TIMEOUT", parse=_positive_float, help=(
        "seconds one input URL may take to download, redirects included"))] = 60.0
    image_loaders: Annotated[tuple[tuple[str, str], ...], env("IMAGE_LOADERS", parse=_loaders, help=(
        "`Class:input` pairs whose input may hold an image as base64, a data URL, an http(s) URL or an "
        "`oss://` / `s3://` object"))] = (
        ("LoadImage", "image"), ("LoadImageMask", "image"))
    media_loaders: Annotated[tuple[tuple[str, str], ...], env("MEDIA_LOADERS", parse=_loaders, help=(
        "`Class:input` pairs whose input may hold a video or audio file as a data URL, an http(s) URL or an "
        "`oss://` / `s3://` object"))] = (
        ("LoadVideo", "file"), ("VHS_LoadVideo", "video"), ("LoadAudio", "audio"), ("VHS_LoadAudioUpload", "audio"))
    models_dir: Annotated[Path | None, env("MODELS_DIR", parse=Path, shown="`$NAS_DIR/models`, else the launched "
                          "ComfyUI's `models/`", help=(
        "where models named by URL are downloaded (a folder per kind: `checkpoints`, `loras`, ...), read by "
        "ComfyUI"))] = None
    model_max_bytes: Annotated[int, env("MODEL_MAX_BYTES", parse=_int_in(1, 1 << 50), shown="`68719476736` (64 GiB)",
                                        help="cap on one model downloaded by URL, in bytes")] = 64 << 30
    model_cache_bytes: Annotated[int | None, env("MODEL_CACHE_BYTES", parse=_int_in(1, 1 << 60), help=(
        "bytes the models downloaded by URL may take together: beyond, the least recently used go (never a model "
        "placed by hand, never one a run still needs); unset, they stay"))] = None
    model_stall_timeout: Annotated[float, env("MODEL_STALL_TIMEOUT", parse=_positive_float, help=(
        "seconds a model's source may send nothing before its download is given up (resumed by the next run)"))
    ] = 60.0
    model_tokens: Annotated[tuple[tuple[str, SecretStr], ...], env("MODEL_TOKENS", parse=_host_tokens, help=(
        "`host=token` pairs: the bearer token sent with a model URL on that host or its subdomains (Hugging Face, "
        "Civitai), never to the hosts it redirects to"))] = ()
    model_loaders: Annotated[tuple[tuple[str, str, str], ...], env("MODEL_LOADERS", parse=_model_loaders, help=(
        "`Class:input:folder` triples of custom loaders whose input may name a model by URL, added to the "
        "built-in ones (checkpoints, LoRAs, VAEs, ControlNets, UNets, CLIPs, upscalers)"))] = ()
    agent_token: Annotated[SecretStr | None, env("AGENT_TOKEN", parse=SecretStr, help=(
        "bearer token required on every route but `/healthz`, `/app/` and the contract; the admin key (API keys "
        "made with `comfyui-agent keys create` are accepted beside it)"))] = None
    key_cache_seconds: Annotated[float, env("KEY_CACHE_SECONDS", parse=_positive_float, help=(
        "seconds an instance trusts an API key it looked up in the store: a revoked key stops working everywhere "
        "within this"))] = 2.0
    gpu_second_price: Annotated[float | None, env("GPU_SECOND_PRICE", parse=_positive_float, help=(
        "price of one GPU-second (FC bills GPU instances per second, by GPU type): the usage ledger's cost of a "
        "run is its execution seconds times this; unset, no cost is given"))] = None
    webhook_url: Annotated[str | None, env("WEBHOOK_URL", parse=check_webhook_url, help=(
        "where a run's events go when its request names no `options.webhook`"))] = None
    webhook_secret: Annotated[SecretStr | None, env("WEBHOOK_SECRET", parse=_webhook_secret, help=(
        "signs every webhook (Standard Webhooks: `whsec_` and base64); unset, webhooks go unsigned"))] = None
    webhook_timeout: Annotated[float, env("WEBHOOK_TIMEOUT", parse=_positive_float, help=(
        "seconds a run's final event keeps being retried before its request ends (FC freezes the instance "
        "once no request is open)"))] = 10.0
    metrics_public: Annotated[bool, env("METRICS_PUBLIC", parse=_bool, help=(
        "serve `/metrics` without the token (for a scraper inside the VPC that cannot send one)"))] = False
    cors_origins: Annotated[tuple[str, ...], env("CORS_ORIGINS", parse=_origins, help=(
        "origins whose pages may call the agent: a list (credentials allowed), or `*` (any, without credentials)"
    ))] = ()
    initialize_timeout: Annotated[float, env("INITIALIZE_TIMEOUT", parse=_positive_float, help=(
        "seconds `POST /initialize` waits for ComfyUI (and the warm-up prompt)"))] = 600.0
    warmup_workflow: Annotated[str | None, env("WARMUP_WORKFLOW", "WARMUP_PROMPT", parse=_workflow_or_file, help=(
        "a workflow's name, or a workflow or prompt file, run once as it stands before the first user's run "
        "(models it names by URL fetched, ComfyUI's models loaded): by `POST /initialize` on FC, at start "
        "elsewhere (`WARMUP_AT_START`)"))] = None
    fc_function_name: Annotated[str | None, env("FC_FUNCTION_NAME", help=(
        "set by FC in its instances: the agent is on FC (see `WARMUP_AT_START`)"))] = None
    warmup_at_start: Annotated[str, env("WARMUP_AT_START", parse=_one_of("auto", "yes", "no"), help=(
        "run the warm-up as the agent starts: `auto` off FC only (FC sets `FC_FUNCTION_NAME`; there FC's "
        "initializer runs it before any traffic)"))] = "auto"
    prestop_grace: Annotated[float, env("PRESTOP_GRACE", parse=_positive_float, help=(
        "seconds `GET /pre-stop` and SIGTERM give open runs to finish"))] = 60.0
    workflows_dir: Annotated[Path | None, env("WORKFLOWS_DIR", parse=Path, shown=(
        "`$COMFYUI_DIR/workflows`, else this checkout's `comfyui/workflows`"),
        help="the workflows served at `/api/workflows` and offered by the page (with `$NAS_DIR/workflows`)")] = None
    worker_url: Annotated[str | None, env("WORKER_URL", parse=_http_url, help=(
        "gateway: the GPU function's HTTP trigger, where runs go as FC asynchronous invocations (a held run as a "
        "synchronous one)"))] = None
    worker_token: Annotated[SecretStr | None, env("WORKER_TOKEN", parse=SecretStr, shown="`AGENT_TOKEN`", help=(
        "gateway: the bearer token sent to `WORKER_URL` (the worker's `AGENT_TOKEN`)"))] = None
    async_max_event_age: Annotated[int, env("ASYNC_MAX_EVENT_AGE", parse=_int_in(1, 30 * 86400), help=(
        "gateway: the worker function's `maxAsyncEventAgeInSeconds`; a run handed off that no worker has taken "
        "by then reads as failed (`NotDelivered`)"))] = 86400
    log_level: Annotated[str, env("LOG_LEVEL", parse=_log_level, shown="`info`",
                                  help="`debug`, `info`, `warning` or `error`")] = "INFO"
    log_format: Annotated[str, env("LOG_FORMAT", parse=_one_of("text", "json"), help=(
        "`text` (one `key=value` line per event) or `json` (one JSON object per line, for log collectors)"))] = "text"
    ws_stall_timeout: Annotated[float, env("WS_STALL_TIMEOUT", parse=_positive_float, help=(
        "seconds of silence on the event connection to ComfyUI, while runs are followed, after which ComfyUI's "
        "queue is asked whether the silence is a long step (kept) or a stalled connection (replaced, every run "
        "re-checked over HTTP); asked again after as long once more"))] = 30.0
    comfyui_start_timeout: Annotated[float, env("COMFYUI_START_TIMEOUT", parse=_positive_float, help=(
        "seconds a ComfyUI start may take before it is killed and started again"))] = 600.0
    restart_backoff_max: Annotated[float, env("RESTART_BACKOFF_MAX", parse=_positive_float, help=(
        "longest wait between ComfyUI restarts, in seconds (1 s, doubling while it never answers)"))] = 30.0
    stop_grace: Annotated[float, env("STOP_GRACE", parse=_positive_float,
                                     help="seconds ComfyUI gets after SIGTERM before SIGKILL")] = 10.0

    @property
    def gateway(self) -> bool:
        return self.agent_mode == "gateway"

    @property
    def buckets(self) -> BucketSettings:
        return BucketSettings(self.output_store_endpoint, self.output_store_region, self.output_store_key_id,
                              self.output_store_key_secret, self.output_url_ttl)

    @property
    def launch(self) -> LaunchSettings:
        return LaunchSettings(self.comfyui_interpreter, self.comfyui_dir, self.comfyui_port, self.comfyui_device,
                              self.comfyui_args, self.nas_dir, self.comfyui_folders["output"], self.comfyui_temp_dir,
                              self.comfyui_user_folder, self.comfyui_start_timeout, self.stop_grace,
                              self.restart_backoff_max)

    @property
    def addresses(self) -> AddressRule:
        return AddressRule(self.url_allow_private, self.url_allow_hosts)

    @property
    def inputs(self) -> InputSettings:
        return InputSettings(self.input_max_bytes, self.input_fetch_timeout, self.image_loaders, self.media_loaders,
                             self.addresses)

    @property
    def warms_up_at_start(self) -> bool:
        if self.warmup_at_start == "auto":
            return self.fc_function_name is None
        return self.warmup_at_start == "yes"

    @property
    def models(self) -> ModelSettings:
        loaders = {**MODEL_LOADERS, **{f"{node}.{name}": folder for node, name, folder in self.model_loaders}}
        return ModelSettings(self.models_folder, self.model_max_bytes, self.model_cache_bytes, self.model_stall_timeout,
                             dict(self.model_tokens), loaders, self.addresses)

    @property
    def models_folder(self) -> Path | None:
        """Where URL models go: the setting, the NAS's, or the launched ComfyUI's own; None for a ComfyUI the
        agent does not launch (its folders are not the agent's to know)."""
        if self.models_dir is not None:
            return Path(os.path.abspath(self.models_dir))
        if self.nas_dir is not None:
            return self.nas_dir / "models"
        if self.launches_comfyui:
            return self.comfyui_path(flag_value(self.comfyui_args, "--base-directory") or ".") / "models"
        return None

    @property
    def webhooks(self) -> WebhookSettings:
        return WebhookSettings(self.webhook_url, self.webhook_secret, self.webhook_timeout, self.addresses)

    @property
    def launches_comfyui(self) -> bool:
        return self.comfyui_url is None and not self.gateway

    @property
    def token_for_worker(self) -> SecretStr | None:
        return self.worker_token or self.agent_token

    @property
    def comfyui_interpreter(self) -> str:
        """The interpreter ComfyUI is launched with: the setting, the checkout's own virtualenv, or this one."""
        if self.comfyui_python:
            return self.comfyui_python
        for venv in (".venv", "venv"):
            candidate = self.comfyui_dir / venv / "bin" / "python"
            if candidate.is_file():
                return str(candidate)
        return sys.executable

    @property
    def comfyui_base_url(self) -> str:
        return self.comfyui_url or f"http://127.0.0.1:{self.comfyui_port}"

    @property
    def workflows_paths(self) -> list[Path]:
        """Where workflows are: the setting, the image's copy, or this source checkout's; then the NAS's."""
        checkout = Path(__file__).resolve().parent.parent / "comfyui" / "workflows"
        own = next((candidate for candidate in (self.workflows_dir, self.comfyui_dir / "workflows", checkout)
                    if candidate is not None and candidate.is_dir()), None)
        return [folder for folder in (own, self.nas_dir / "workflows" if self.nas_dir else None) if folder]

    @property
    def stale_after(self) -> float:
        """An unfinished task whose owner was silent this long reads as failed (the instance is gone)."""
        return self.task_heartbeat * 6

    @property
    def comfyui_folders(self) -> dict[str, Path]:
        """ComfyUI's folder for each output type, as far as the agent knows (all of them when it launches
        ComfyUI: its defaults follow `--base-directory`, as ComfyUI's do)."""
        base = flag_value(self.comfyui_args, "--base-directory")
        own = Path(base) if base else self.comfyui_dir
        output = self.comfyui_output_dir or (self.nas_dir / "output" if self.nas_dir else None)
        temp = self.comfyui_temp_dir
        if self.launches_comfyui:
            output, temp = output or own / "output", temp or own
        folders = {"output": output, "temp": None if temp is None else temp / "temp"}
        return {kind: folder for kind, folder in folders.items() if folder is not None}

    @property
    def comfyui_user_folder(self) -> Path:
        """Where the launched ComfyUI keeps `user/`: a ComfyUI installed on the NAS would otherwise share one
        folder among every instance."""
        if self.comfyui_user_dir is not None:
            return Path(os.path.abspath(self.comfyui_user_dir))  # the agent makes it: one path for both
        own = self.comfyui_path(flag_value(self.comfyui_args, "--base-directory") or ".") / "user"
        if self.on_nas(own):
            return Path(tempfile.gettempdir()) / "comfyui-user"
        return own

    def comfyui_path(self, path: str | Path) -> Path:
        """A path as the launched ComfyUI reads it: relative to COMFYUI_DIR, its working directory."""
        return Path(os.path.abspath(Path(self.comfyui_dir) / path))

    def on_nas(self, path: Path) -> bool:
        """Whether `path` lies under NAS_DIR, as written or through symbolic links (either way, to be safe)."""
        nas = self.nas_dir
        return nas is not None and any(Path(resolve(path)).is_relative_to(resolve(nas))
                                       for resolve in (os.path.abspath, os.path.realpath))

    @property
    def assets_folder(self) -> Path:
        if self.assets_dir is not None:
            return self.assets_dir
        return self.nas_dir / "assets" if self.nas_dir else Path("data/assets").absolute()

    @property
    def store_url(self) -> str:
        if self.task_store:
            return self.task_store
        base = self.nas_dir / "tasks" if self.nas_dir else Path("data/tasks").absolute()
        return f"file://{base}"


@dataclass(frozen=True)
class Setting:
    """One declared setting as the flag parser, the environment reader and the docs see it."""

    field: str
    env: tuple[str, ...]
    parse: Callable[[str], Any]
    help: str
    default: str

    @property
    def flag(self) -> str:
        return "--" + self.env[0].lower().replace("_", "-")


def _declared() -> tuple[Setting, ...]:
    found = []
    for field, info in Settings.model_fields.items():
        declared = next(item for item in info.metadata if isinstance(item, Env))
        default = declared.shown or _shown(info.get_default(call_default_factory=True))
        found.append(Setting(field, declared.names, declared.parse, declared.help, default))
    return tuple(found)


SETTINGS: tuple[Setting, ...] = _declared()


def settings_table() -> str:
    """The settings as a Markdown table (README.md holds a copy, checked by the tests): `python -m agent.config`."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for setting in SETTINGS:
        names = f"`{setting.env[0]}`" + (f" (also {', '.join(f'`{name}`' for name in setting.env[1:])})"
                                         if setting.env[1:] else "")
        rows.append(f"| {names} | {setting.default} | {setting.help} |")
    return "\n".join(rows) + "\n"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="comfyui-agent",
        description="Serve ComfyUI as a stateless HTTP API. Every flag also reads from its environment variable.",
    )
    for setting in SETTINGS:
        names = " / ".join(setting.env)
        parser.add_argument(setting.flag, dest=setting.field, metavar=setting.env[0],
                            help=f"{setting.help} (default: {setting.default}) [{names}]")
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
    settings = Settings(**values)
    _check_folders(settings)
    _check_launchable(settings)
    _check_gateway(settings)
    return settings


def flag_value(args: Sequence[str], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in a command line (the last one wins, as in argparse)."""
    value = None
    for index, arg in enumerate(args):
        if arg == flag and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def _check_folders(settings: Settings) -> None:
    """The agent reads (and later removes) ComfyUI's files, and keeps instances apart, so it must be the one that
    says where they go."""
    for flag, name in (("--output-directory", "COMFYUI_OUTPUT_DIR"), ("--temp-directory", "COMFYUI_TEMP_DIR"),
                       ("--user-directory", "COMFYUI_USER_DIR")):
        if flag_value(settings.comfyui_args, flag) is not None:
            raise ConfigError(f"invalid setting COMFYUI_ARGS: set {name} instead of {flag}")
    database = flag_value(settings.comfyui_args, "--database-url") or ""
    in_a_file = database.startswith("sqlite:///") and database != "sqlite:///:memory:"
    if in_a_file and settings.on_nas(settings.comfyui_path(database.removeprefix("sqlite:///"))):
        raise ConfigError("invalid setting COMFYUI_ARGS: --database-url on NAS_DIR would be one SQLite file for every "
                          "instance, and only the first can lock it (leave --database-url out: each ComfyUI then "
                          "keeps its database in memory)")


def _check_launchable(settings: Settings) -> None:
    """Fail at startup, not at the first request, when there is no ComfyUI to launch."""
    if settings.launches_comfyui and not (settings.comfyui_dir / "main.py").is_file():
        raise ConfigError(
            f"invalid setting COMFYUI_DIR={str(settings.comfyui_dir)!r}: no main.py there "
            "(point it at a ComfyUI checkout, install one with `comfyui-agent-install DIR`, "
            "or set COMFYUI_URL to use a running ComfyUI)"
        )


def _check_gateway(settings: Settings) -> None:
    if settings.gateway and settings.worker_url is None:
        raise ConfigError("invalid setting AGENT_MODE=gateway: set WORKER_URL to the GPU function's HTTP trigger")
    if settings.gateway and settings.store_url.startswith("memory:"):
        raise ConfigError("invalid setting TASK_STORE: a gateway shares tasks with its workers (file:// or redis://)")


if __name__ == "__main__":
    print(settings_table(), end="")
