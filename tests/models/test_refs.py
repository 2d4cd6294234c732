"""Which inputs name a model by URL, the names models get, and what a file's first bytes show it is."""

from __future__ import annotations

import struct
from typing import Any

import pytest

from agent.errors import ModelError
from agent.model_folders import MODEL_LOADERS
from agent.models.library import file_kind, final_name
from agent.models.refs import ModelRef, model_refs
from model_server import safetensors

URL = "https://huggingface.co/org/repo/resolve/main/sd_xl%20base.safetensors"


def node(class_type: str, **inputs: Any) -> dict[str, Any]:
    return {"class_type": class_type, "inputs": inputs}


def test_model_inputs_holding_a_url_are_found_with_their_folder_and_checksum() -> None:
    digest = "AB" * 32
    prompt = {"1": node("CheckpointLoaderSimple", ckpt_name=URL),
              "2": node("LoraLoader", lora_name=f"s3://bucket/loras/x.safetensors#sha256={digest}", model=["1", 0]),
              "3": node("VAELoader", vae_name="local.safetensors"),
              "4": node("LoadImage", image="https://example.com/cat.png"),
              "5": node("CLIPTextEncode", text="see https://example.com/a.safetensors for details")}
    assert model_refs(prompt, MODEL_LOADERS) == [
        ModelRef("1", "ckpt_name", "checkpoints", URL),
        ModelRef("2", "lora_name", "loras", "s3://bucket/loras/x.safetensors", digest.lower())]


def test_a_model_url_where_no_model_goes_is_refused() -> None:
    with pytest.raises(ModelError) as refused:
        model_refs({"7": node("LoadImage", image="https://example.com/model.safetensors")}, MODEL_LOADERS)
    assert refused.value.body()["node_id"] == "7" and refused.value.body()["input"] == "image"
    assert "LoadImage.image takes no model" in refused.value.body()["reason"]


@pytest.mark.parametrize(("value", "reason"), [
    (URL + "#md5=abc", "the only fragment a model URL takes is #sha256=<64 hex digits>"),
    (URL + "#sha256=abc", "the only fragment a model URL takes"),
    ("ftp://example.com/x.safetensors", "a model URL is https, http, s3 or oss"),
    ("https:///x.safetensors", "the model URL has no host or bucket"),
])
def test_a_bad_model_url_is_refused(value: str, reason: str) -> None:
    with pytest.raises(ModelError, match=reason):
        model_refs({"1": node("CheckpointLoaderSimple", ckpt_name=value)}, MODEL_LOADERS)


def test_custom_loaders_come_from_the_setting() -> None:
    loaders = {**MODEL_LOADERS, "UnetLoaderGGUF.unet_name": "unet"}
    found = model_refs({"1": node("UnetLoaderGGUF", unet_name="https://x.org/flux.gguf")}, loaders)
    assert [ref.kind for ref in found] == ["unet"]


def test_a_models_key_and_name_are_stable_and_safe() -> None:
    ref = ModelRef("1", "ckpt_name", "checkpoints", URL)
    assert ref.key == ModelRef("9", "x", "checkpoints", URL).key and len(ref.key) == 12
    assert ref.basename == "sd_xl_base.safetensors"
    assert ModelRef("1", "x", "loras", "https://x.org/../..").basename == "model"
    assert final_name(ref, None, "safetensors") == f"{ref.key}-sd_xl_base.safetensors"
    civitai = ModelRef("1", "lora_name", "loras", "https://civitai.com/api/download/models/12345")
    served = final_name(civitai, "detail tweaker.safetensors", "safetensors")
    assert served == f"{civitai.key}-detail_tweaker.safetensors"
    assert final_name(civitai, None, "safetensors") == f"{civitai.key}-12345.safetensors"
    assert final_name(civitai, None, "torch") == f"{civitai.key}-12345.ckpt"
    mislabeled = ModelRef("1", "ckpt_name", "checkpoints", "https://x.org/old.ckpt")
    assert final_name(mislabeled, None, "safetensors") == f"{mislabeled.key}-old.safetensors"


def test_a_files_first_bytes_tell_its_kind() -> None:
    assert file_kind(safetensors(1000)[:16]) == "safetensors"
    assert file_kind(b"GGUF\x03\x00\x00\x00" + b"\0" * 8) == "gguf"
    assert file_kind(b"PK\x03\x04" + b"\0" * 12) == "torch"
    assert file_kind(b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19.") == "torch"
    assert file_kind(b"<!doctype html><title>") is None
    assert file_kind(struct.pack("<Q", 1 << 40) + b"{\"a\":1}") is None
