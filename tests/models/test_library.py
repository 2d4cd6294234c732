"""Models named by URL, fetched into a models folder from a local server (and moto's S3): once, resumed, checked,
and refused the ways the issue lists, with nothing half-written where ComfyUI reads."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from pydantic import SecretStr

from agent.buckets.clients import Buckets
from agent.config import Settings
from agent.errors import ModelError, ModelFetchFailed, ModelStorageFull
from agent.models.library import Models
from agent.tasks.model import ModelFetch, ModelSource
from agent_harness import serving
from model_server import ModelServer, safetensors, sha256
from s3_server import S3

MODEL = safetensors(3 << 20, seed=1)
LORA = safetensors(200_000, seed=2)


@pytest.fixture
async def server() -> AsyncIterator[tuple[ModelServer, str]]:
    files = ModelServer({"sd.safetensors": MODEL, "lora.safetensors": LORA, "12345": LORA})
    async with serving(files.app()) as url:
        yield files, url


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def settings(folder: Path, **more: Any) -> Settings:
    return Settings(models_dir=folder, url_allow_hosts=frozenset({"127.0.0.1", "localhost"}), **more)


def models_of(folder: Path, **more: Any) -> Models:
    configured = settings(folder, **more)
    return Models(configured.models, Buckets.from_settings(configured.buckets, {}))


def checkpoint(url: str, node: str = "4") -> dict[str, Any]:
    return {node: {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": url}},
            "9": {"class_type": "SaveImage", "inputs": {"images": [node, 0], "filename_prefix": "x"}}}


async def resolve(models: Models, prompt: dict[str, Any],
                  heard: list[list[ModelFetch]] | None = None) -> tuple[dict[str, Any], list[ModelFetch]]:
    try:
        return await models.resolve(prompt, (heard if heard is not None else []).append, "task")
    finally:
        await models.close()


def listed(folder: Path) -> list[str]:
    """What ComfyUI would list: the files of the kind folders (never `.downloads`)."""
    return sorted(str(path.relative_to(folder)) for path in folder.rglob("*")
                  if path.is_file() and ".downloads" not in path.parts)


async def test_a_model_is_downloaded_into_its_folder_and_named_in_the_graph(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    files, url = server
    heard: list[list[ModelFetch]] = []
    graph, fetched = await resolve(models_of(tmp_path), checkpoint(f"{url}/m/sd.safetensors"), heard)
    name = graph["4"]["inputs"]["ckpt_name"]
    assert name.endswith("-sd.safetensors") and len(name) == len("0123456789ab-sd.safetensors")
    assert (tmp_path / "checkpoints" / name).read_bytes() == MODEL
    assert graph["9"] == checkpoint("x")["9"]
    assert fetched == [ModelFetch(node_id="4", input="ckpt_name", folder="checkpoints", name=name,
                                  bytes=len(MODEL), total=len(MODEL), seconds=fetched[0].seconds,
                                  source=ModelSource.DOWNLOADED)]
    assert heard[-1][0].bytes == len(MODEL) and heard[-1][0].total == len(MODEL)
    assert listed(tmp_path) == [f"checkpoints/{name}"]

    again, cached = await resolve(models_of(tmp_path), checkpoint(f"{url}/m/sd.safetensors"))
    assert again == graph and cached[0].source is ModelSource.CACHED
    assert files.hits["/m/sd.safetensors"] == 1


async def test_the_same_model_named_by_ten_runs_is_downloaded_once(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    files, url = server
    models = models_of(tmp_path)
    try:
        ended = await asyncio.wait_for(asyncio.gather(*(
            models.resolve(checkpoint(f"{url}/hold/sd.safetensors", node=f"c{index}"), lambda _: None, f"t{index}")
            for index in range(10)), _release_when_held(files)), 60)
    finally:
        await models.close()
    results = [result for result in ended if isinstance(result, tuple)]
    sources = sorted(str(fetches[0].source) for _, fetches in results)
    assert sources == ["downloaded"] + ["waited"] * 9
    assert files.hits["/hold/sd.safetensors"] == 1


async def _release_when_held(files: ModelServer) -> None:
    await files.held.wait()
    files.release.set()


async def test_two_agents_sharing_one_folder_download_a_model_once(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    """Two instances on one NAS: the second finds the first's lock and waits for its file."""
    files, url = server
    first, second = models_of(tmp_path), models_of(tmp_path)
    prompt = checkpoint(f"{url}/hold/sd.safetensors")
    second_waits = asyncio.Event()
    try:
        downloading = asyncio.ensure_future(first.resolve(prompt, lambda _: None, "a"))
        await asyncio.wait_for(files.held.wait(), 30)
        waiting = asyncio.ensure_future(second.resolve(prompt, lambda _: second_waits.set(), "b"))
        await asyncio.wait_for(second_waits.wait(), 30)  # it found the lock taken, and looks at the part
        files.release.set()
        (graph, fetched), (other, waited) = await asyncio.wait_for(asyncio.gather(downloading, waiting), 60)
    finally:
        await first.close()
        await second.close()
    assert graph == other
    assert fetched[0].source is ModelSource.DOWNLOADED
    assert waited[0].source is ModelSource.WAITED
    assert files.hits["/hold/sd.safetensors"] == 1


async def test_a_broken_off_download_resumes_where_it_stopped(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    files, url = server
    files.break_after = 1 << 20
    with pytest.raises(ModelFetchFailed) as failed:
        await resolve(models_of(tmp_path), checkpoint(f"{url}/break/sd.safetensors"))
    assert failed.value.body()["node_id"] == "4" and failed.value.body()["input"] == "ckpt_name"
    assert listed(tmp_path) == []  # nothing where ComfyUI reads
    parts = list((tmp_path / ".downloads" / "checkpoints").glob("*.part"))
    assert len(parts) == 1 and 0 < parts[0].stat().st_size < len(MODEL)
    held = parts[0].stat().st_size

    graph, _ = await resolve(models_of(tmp_path), checkpoint(f"{url}/break/sd.safetensors"))
    assert (tmp_path / "checkpoints" / graph["4"]["inputs"]["ckpt_name"]).read_bytes() == MODEL
    assert files.ranges[-1] == f"bytes={held}-"
    assert not parts[0].exists()


async def test_a_server_that_ignores_range_starts_the_file_again(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    _, url = server
    models = models_of(tmp_path)
    prompt = checkpoint(f"{url}/norange/sd.safetensors")
    ref = models.refs(prompt)[0]
    part = tmp_path / ".downloads" / "checkpoints" / f"{ref.key}.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"garbage that is not the file's start" * 100)
    graph, _ = await resolve(models, prompt)
    assert (tmp_path / "checkpoints" / graph["4"]["inputs"]["ckpt_name"]).read_bytes() == MODEL


async def test_a_checksum_is_verified(tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    _, url = server
    good = f"{url}/m/lora.safetensors#sha256={sha256(LORA)}"
    prompt = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": good, "model": ["4", 0]}}}
    graph, _ = await resolve(models_of(tmp_path), prompt)
    assert (tmp_path / "loras" / graph["1"]["inputs"]["lora_name"]).read_bytes() == LORA

    wrong = {"1": {"class_type": "LoraLoader", "inputs": {"lora_name": f"{url}/m/sd.safetensors#sha256={'0' * 64}"}}}
    with pytest.raises(ModelError, match="checksum mismatch: the file has sha256 " + sha256(MODEL)):
        await resolve(models_of(tmp_path), wrong)
    assert listed(tmp_path) == [f"loras/{graph['1']['inputs']['lora_name']}"]
    assert not list((tmp_path / ".downloads" / "loras").glob("*.part"))

    cached_but_wrong = {"1": {"class_type": "LoraLoader",
                              "inputs": {"lora_name": good.replace(sha256(LORA), "1" * 64)}}}
    with pytest.raises(ModelError, match="the model at this URL has sha256"):
        await resolve(models_of(tmp_path), cached_but_wrong)


@pytest.mark.parametrize(("path", "reason"), [
    ("/missing.safetensors", "HTTP 404 from 127.0.0.1 (no such file)"),
    ("/private/sd.safetensors", "HTTP 401 from 127.0.0.1 (a private model: set MODEL_TOKENS for its host)"),
    ("/page/sd.safetensors", "not a model file"),
    ("/m/sd.safetensors", "larger than the 1000000-byte limit"),
])
async def test_a_bad_model_url_is_refused_naming_the_input_and_leaves_nothing(
        tmp_path: Path, server: tuple[ModelServer, str], path: str, reason: str) -> None:
    _, url = server
    with pytest.raises(ModelError) as refused:
        await resolve(models_of(tmp_path, model_max_bytes=1_000_000), checkpoint(url + path))
    body = refused.value.body()
    assert body["message"] == "ModelError" and body["node_id"] == "4" and body["input"] == "ckpt_name"
    assert reason in body["reason"] and body["error"].startswith("node 4, input 'ckpt_name': ")
    assert listed(tmp_path) == []
    assert not list(tmp_path.rglob("*.part"))


async def test_a_private_address_is_refused(tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    _, url = server
    configured = Settings(models_dir=tmp_path)
    models = Models(configured.models, Buckets.from_settings(configured.buckets, {}))
    with pytest.raises(ModelError, match="refused address"):
        await resolve(models, checkpoint(f"{url}/m/sd.safetensors"))
    assert listed(tmp_path) == []


async def test_a_token_goes_to_its_host_only(tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    """Like Hugging Face's: the token for its host, and none for the CDN it redirects to."""
    files, url = server
    port = url.rsplit(":", 1)[1]
    cdn = f"http://localhost:{port}/m/sd.safetensors"
    models = models_of(tmp_path, model_tokens=(("127.0.0.1", SecretStr("secret")),))
    graph, _ = await resolve(models, checkpoint(f"{url}/private/sd.safetensors"))
    assert graph["4"]["inputs"]["ckpt_name"].endswith("-sd.safetensors")
    redirected, _ = await resolve(models_of(tmp_path, model_tokens=(("127.0.0.1", SecretStr("secret")),)),
                                  checkpoint(f"{url}/to?url={cdn}&x=.safetensors"))
    assert redirected["4"]["inputs"]["ckpt_name"]
    assert (f"127.0.0.1:{port}", "Bearer secret") in files.authorizations
    assert (f"localhost:{port}", None) in files.authorizations
    assert all(authorization is None for host, authorization in files.authorizations if host.startswith("localhost"))


async def test_a_link_without_a_file_name_takes_the_served_one(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    _, url = server
    graph, _ = await resolve(models_of(tmp_path), {"1": {"class_type": "LoraLoader",
                                                         "inputs": {"lora_name": f"{url}/dl/12345"}}})
    name = graph["1"]["inputs"]["lora_name"]
    assert name.endswith("-12345-served.safetensors")
    assert (tmp_path / "loras" / name).read_bytes() == LORA


async def test_a_full_disk_keeps_nothing(tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    """ENOSPC while writing (the part file is /dev/full, where every write fails so)."""
    _, url = server
    models = models_of(tmp_path)
    prompt = checkpoint(f"{url}/m/sd.safetensors")
    part = tmp_path / ".downloads" / "checkpoints" / f"{models.refs(prompt)[0].key}.part"
    part.parent.mkdir(parents=True)
    os.symlink("/dev/full", part)
    with pytest.raises(ModelStorageFull, match="no space left"):
        await resolve(models, prompt)
    assert listed(tmp_path) == []
    assert not part.exists() and not part.is_symlink()


async def test_a_model_larger_than_the_free_space_is_refused_before_a_byte(
        tmp_path: Path, server: tuple[ModelServer, str], monkeypatch: pytest.MonkeyPatch) -> None:
    _, url = server
    monkeypatch.setattr("shutil.disk_usage", lambda _: Usage(10**12, 10**12 - 1000, 1000))
    with pytest.raises(ModelStorageFull, match="has 1000 bytes free"):
        await resolve(models_of(tmp_path), checkpoint(f"{url}/m/sd.safetensors"))
    assert listed(tmp_path) == []


async def test_a_model_from_a_bucket(tmp_path: Path, s3: S3) -> None:
    s3.put("models/sd.safetensors", MODEL)
    models = models_of(tmp_path, output_store_endpoint=s3.endpoint, output_store_key_id="test-key",
                       output_store_key_secret="test-secret")
    graph, fetched = await resolve(models, checkpoint(f"s3://{s3.bucket}/models/sd.safetensors"))
    assert (tmp_path / "checkpoints" / graph["4"]["inputs"]["ckpt_name"]).read_bytes() == MODEL
    assert fetched[0].total == len(MODEL)
    with pytest.raises(ModelError, match="no object"):
        await resolve(models_of(tmp_path, output_store_endpoint=s3.endpoint, output_store_key_id="test-key",
                                output_store_key_secret="test-secret"),
                      checkpoint(f"s3://{s3.bucket}/models/none.safetensors"))


async def test_a_redirect_to_a_private_address_is_refused(tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    """Every hop passes the guard: an allowed host that redirects to a name resolving to loopback is refused."""
    _, url = server
    port = url.rsplit(":", 1)[1]
    configured = Settings(models_dir=tmp_path, url_allow_hosts=frozenset({"127.0.0.1"}))
    models = Models(configured.models, Buckets.from_settings(configured.buckets, {}))
    with pytest.raises(ModelError, match="refused address: localhost resolves to"):
        await resolve(models, checkpoint(f"{url}/to?url=http://localhost:{port}/m/sd.safetensors&x=.safetensors"))
    assert listed(tmp_path) == []


async def test_a_stalled_or_failing_source_is_a_fetch_failure_and_keeps_what_came(
        tmp_path: Path, server: tuple[ModelServer, str]) -> None:
    files, url = server
    with pytest.raises(ModelFetchFailed, match="download failed"):
        await resolve(models_of(tmp_path, model_stall_timeout=0.5), checkpoint(f"{url}/stall/sd.safetensors"))
    files.release.set()
    assert listed(tmp_path) == []
    assert [part.stat().st_size for part in tmp_path.rglob("*.part")] == [100_000]  # resumed by the next run
    with pytest.raises(ModelFetchFailed, match=r"HTTP 503 from 127\.0\.0\.1"):
        await resolve(models_of(tmp_path), checkpoint(f"{url}/busy/sd.safetensors"))
