"""The Pillow node implementations write real images; the model-free SD pipeline runs the txt2img shape."""

from __future__ import annotations

import copy
import json
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image
from PIL.PngImagePlugin import PngImageFile

from comfy_double.harness import DoubleClient, MakeDouble
from comfy_double.recordings import load


def empty(width: int = 8, height: int = 8, batch: int = 1, color: int = 0) -> dict[str, Any]:
    inputs = {"width": width, "height": height, "batch_size": batch, "color": color}
    return {"class_type": "EmptyImage", "inputs": inputs}


def save(source: str, prefix: str) -> dict[str, Any]:
    return {"class_type": "SaveImage", "inputs": {"images": [source, 0], "filename_prefix": prefix}}


async def run(double: DoubleClient, prompt: dict[str, Any], client: str = "nodes") -> dict[str, Any]:
    """Submit, wait, return the /history entry."""
    status, reply = await double.post_prompt({"prompt": prompt, "client_id": client})
    assert status == 200, reply
    return await double.wait_history(reply["prompt_id"])


def saved(double: DoubleClient, image: dict[str, Any]) -> Image.Image:
    folder = {"output": double.server.config.output_dir, "temp": double.server.config.temp_dir}[image["type"]]
    return Image.open(Path(folder, image["subfolder"], image["filename"]))


async def test_batches_become_numbered_png_files(double: DoubleClient) -> None:
    first = await run(double, {"1": empty(32, 24, batch=2, color=0x112233), "2": save("1", "batch")})
    second = await run(double, {"1": empty(32, 24, batch=2, color=0x445566), "2": save("1", "batch")})
    names = [i["filename"] for entry in (first, second) for i in entry["outputs"]["2"]["images"]]
    assert names == ["batch_00001_.png", "batch_00002_.png", "batch_00003_.png", "batch_00004_.png"]
    image = saved(double, first["outputs"]["2"]["images"][1])
    assert (image.format, image.size, image.getpixel((0, 0))) == ("PNG", (32, 24), (0x11, 0x22, 0x33))
    assert isinstance(image, PngImageFile)
    assert json.loads(image.text["prompt"])["2"]["inputs"]["filename_prefix"] == "batch"


async def test_a_slash_in_the_prefix_makes_a_subfolder(double: DoubleClient) -> None:
    entry = await run(double, {"1": empty(), "2": save("1", "a/b/name")})
    image = entry["outputs"]["2"]["images"][0]
    assert (image["subfolder"], image["filename"]) == ("a/b", "name_00001_.png")
    assert saved(double, image).size == (8, 8)


async def test_saving_outside_the_output_directory_fails_the_node(double: DoubleClient) -> None:
    entry = await run(double, {"1": empty(), "2": save("1", "../escape")})
    event, error = entry["status"]["messages"][-1]
    assert (event, error["node_id"], error["exception_type"]) == ("execution_error", "2", "Exception")
    assert "Saving image outside the output folder is not allowed." in error["exception_message"]


async def test_preview_images_go_to_temp(double: DoubleClient) -> None:
    preview = {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}
    entry = await run(double, {"1": empty(color=0xFF0000), "2": preview})
    image = entry["outputs"]["2"]["images"][0]
    assert image["type"] == "temp" and image["filename"].startswith("ComfyUI_temp_")
    assert saved(double, image).getpixel((0, 0)) == (255, 0, 0)


def txt2img(seed: int, prefix: str) -> dict[str, Any]:
    """The recorded SD1.5 txt2img prompt (64x64 here), with another seed and prefix."""
    prompt: dict[str, Any] = copy.deepcopy(load("sd15_random_weights")["requests"][0]["prompt"])
    prompt["3"]["inputs"]["seed"] = seed
    prompt["5"]["inputs"].update(width=64, height=64)
    prompt["9"]["inputs"]["filename_prefix"] = prefix
    return prompt


async def test_the_sd_pipeline_paints_by_seed(double: DoubleClient) -> None:
    pixels = []
    for seed, prefix in ((1, "a"), (2, "b"), (1, "c")):
        entry = await run(double, txt2img(seed, prefix))
        image = saved(double, entry["outputs"]["9"]["images"][0])
        assert image.size == (64, 64)
        pixels.append(image.getpixel((5, 5)))
    assert pixels[0] != pixels[1]
    assert pixels[0] == pixels[2]


async def test_lora_and_vae_encode_fit_into_the_pipeline(make_double: MakeDouble) -> None:
    double = await make_double(loras=["style.safetensors"])
    prompt = txt2img(7, "lora")
    lora = {"lora_name": "style.safetensors", "strength_model": 0.8, "strength_clip": 1.0}
    prompt["10"] = {"class_type": "LoraLoader", "inputs": {"model": ["4", 0], "clip": ["4", 1], **lora}}
    prompt["3"]["inputs"]["model"] = ["10", 0]
    prompt["6"]["inputs"]["clip"] = ["10", 1]
    prompt["11"] = empty(40, 24, color=0x808080)
    prompt["12"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["11", 0], "vae": ["4", 2]}}
    prompt["3"]["inputs"]["latent_image"] = ["12", 0]
    entry = await run(double, prompt)
    assert entry["status"]["status_str"] == "success"
    assert saved(double, entry["outputs"]["9"]["images"][0]).size == (40, 24)


def rgba_png(alpha: int) -> bytes:
    buffer = BytesIO()
    Image.new("RGBA", (16, 8), (10, 20, 30, alpha)).save(buffer, format="PNG")
    return buffer.getvalue()


async def test_masks_from_alpha(double: DoubleClient) -> None:
    await double.upload("mask.png", rgba_png(64))
    prompt = {
        "1": {"class_type": "LoadImageMask", "inputs": {"image": "mask.png", "channel": "alpha"}},
        "2": {"class_type": "MaskToImage", "inputs": {"mask": ["1", 0]}},
        "3": save("2", "mask"),
        "4": {"class_type": "LoadImage", "inputs": {"image": "mask.png"}},
        "5": {"class_type": "MaskToImage", "inputs": {"mask": ["4", 1]}},
        "6": save("5", "loaded_mask"),
    }
    entry = await run(double, prompt)
    for node in ("3", "6"):
        image = saved(double, entry["outputs"][node]["images"][0])
        assert (image.size, image.getpixel((0, 0))) == ((16, 8), (191, 191, 191))


async def test_scale_and_invert(double: DoubleClient) -> None:
    scale: dict[str, Any] = {
        "class_type": "ImageScale", "inputs": {"image": ["1", 0], "upscale_method": "bicubic", "crop": "disabled"}
    }
    prompt = {
        "1": empty(100, 50, color=0x102030),
        "2": {**scale, "inputs": {**scale["inputs"], "width": 40, "height": 0}},
        "3": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}},
        "4": save("3", "scaled"),
        "5": {**scale, "inputs": {**scale["inputs"], "width": 50, "height": 50, "crop": "center"}},
        "6": save("5", "cropped"),
    }
    entry = await run(double, prompt)
    scaled, cropped = (saved(double, entry["outputs"][n]["images"][0]) for n in ("4", "6"))
    assert (scaled.size, scaled.getpixel((1, 1))) == ((40, 20), (0xEF, 0xDF, 0xCF))
    assert cropped.size == (50, 50)


async def test_execution_order_follows_links_not_ids(double: DoubleClient) -> None:
    client = await double.ws("order")
    prompt = {"1": {"class_type": "ImageInvert", "inputs": {"image": ["2", 0]}}, "2": empty(), "3": save("1", "order")}
    _, reply = await double.post_prompt({"prompt": prompt, "client_id": "order"})
    await client.wait_done(reply["prompt_id"])
    assert [m["data"]["node"] for m in client.messages("executing")] == ["2", "1", "3", None]


async def test_0_33_0_save_image_hands_its_images_on(make_double: MakeDouble) -> None:
    """0.33.0 declares SaveImage's images as an output (0.3.64 declares none, so no link can reach it there)."""
    double = await make_double(version="0.33.0")
    preview = {"class_type": "PreviewImage", "inputs": {"images": ["2", 0]}}
    entry = await run(double, {"1": empty(color=0xFF0000), "2": save("1", "chained"), "3": preview})
    assert entry["status"]["status_str"] == "success"
    assert entry["outputs"]["3"]["images"][0]["type"] == "temp"
    old = await make_double()
    status, reply = await old.post_prompt({"prompt": {"1": empty(), "2": save("1", "x"), "3": preview}})
    assert status == 200  # the valid output runs; the link to nothing is the node's error, as in ComfyUI
    assert reply["node_errors"]["3"]["errors"][0]["details"] == "tuple index out of range"
