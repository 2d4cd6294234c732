"""The node classes the double implements, with Pillow instead of torch; they write real image files.

A class may define ``validate_inputs(config, <inputs>)`` (ComfyUI's VALIDATE_INPUTS), ``is_changed(config,
**inputs)`` (IS_CHANGED) and ``steps(inputs)``: the ``progress`` reports it makes while running, each
``(value, max, preview)`` where preview is None or ``(format, image, max_size)``. ``run`` executes in a
worker thread, so the server keeps answering while a node works.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from PIL import Image, ImageOps, ImageSequence, ImageStat
from PIL.PngImagePlugin import PngInfo

from .config import DoubleConfig
from .paths import exists_annotated_filepath, get_annotated_filepath, get_save_image_path
from .values import (
    LATENT_SCALE,
    PREVIEW_MAX_SIZE,
    Conditioning,
    ImageBatch,
    Latent,
    MaskBatch,
    ModelStandIn,
    colour_from,
)

Preview = tuple[str, Image.Image, int | None]
Step = tuple[int, int, Preview | None]
EMPTY_LATENT_COLOUR = (128, 128, 128)


@dataclass
class NodeResult:
    """What a node returns: its outputs (one per RETURN_TYPE) and its UI output (``executed``)."""

    outputs: tuple[Any, ...] = ()
    ui: dict[str, Any] = field(default_factory=dict)


class Node:
    """One instance per (node id, class) is kept by the cache, like ComfyUI's node objects."""

    run: Callable[..., NodeResult]  # every class defines it, with its own inputs as keyword arguments

    def __init__(self, config: DoubleConfig) -> None:
        self.config = config


def _validate_image(config: DoubleConfig, image: str) -> bool | str:
    if not exists_annotated_filepath(image, config):
        return f"Invalid image file: {image}"
    return True


def _file_hash(config: DoubleConfig, image: str) -> str:
    return hashlib.sha256(Path(get_annotated_filepath(image, config)).read_bytes()).hexdigest()


class EmptyImage(Node):
    def run(self, width: int, height: int, batch_size: int = 1, color: int = 0) -> NodeResult:
        rgb = ((color >> 16) & 0xFF, (color >> 8) & 0xFF, color & 0xFF)
        return NodeResult((ImageBatch(tuple(Image.new("RGB", (width, height), rgb) for _ in range(batch_size))),))


def _alpha_mask(frame: Image.Image) -> Image.Image:
    """LoadImage's mask: 1 - alpha, or a 64x64 empty mask when the image has no transparency."""
    if "A" in frame.getbands():
        return ImageOps.invert(frame.getchannel("A"))
    if frame.mode == "P" and "transparency" in frame.info:
        return ImageOps.invert(frame.convert("RGBA").getchannel("A"))
    return Image.new("L", (64, 64), 0)


def _to_8bit(frame: Image.Image) -> Image.Image:
    """16-bit 'I' images are scaled down the way ComfyUI does before converting."""
    return frame.point(lambda v: v * (1 / 255)) if frame.mode == "I" else frame


class LoadImage(Node):
    validate_inputs = staticmethod(_validate_image)

    @staticmethod
    def is_changed(config: DoubleConfig, image: str) -> str:
        return _file_hash(config, image)

    def run(self, image: str) -> NodeResult:
        frames: list[Image.Image] = []
        masks: list[Image.Image] = []
        with Image.open(get_annotated_filepath(image, self.config)) as img:
            for frame in ImageSequence.Iterator(img):
                frame_8bit = _to_8bit(ImageOps.exif_transpose(frame))
                rgb = frame_8bit.convert("RGB")
                if frames and rgb.size != frames[0].size:
                    continue
                frames.append(rgb)
                masks.append(_alpha_mask(frame_8bit))
            keep = len(frames) if img.format != "MPO" else 1
        return NodeResult((ImageBatch(tuple(frames[:keep])), MaskBatch(tuple(masks[:keep]))))


class LoadImageMask(Node):
    validate_inputs = staticmethod(_validate_image)

    @staticmethod
    def is_changed(config: DoubleConfig, image: str, channel: str) -> str:
        return _file_hash(config, image)

    def run(self, image: str, channel: str) -> NodeResult:
        with Image.open(get_annotated_filepath(image, self.config)) as img:
            rgba = ImageOps.exif_transpose(img)
            if rgba.getbands() != ("R", "G", "B", "A"):
                rgba = _to_8bit(rgba).convert("RGBA")
            band = channel[0].upper()
            mask = rgba.getchannel(band)
        return NodeResult((MaskBatch((ImageOps.invert(mask) if band == "A" else mask,)),))


class ImageInvert(Node):
    def run(self, image: ImageBatch) -> NodeResult:
        return NodeResult((ImageBatch(tuple(ImageOps.invert(i) for i in image.images)),))


_RESAMPLE = {
    "nearest-exact": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "area": Image.Resampling.BOX,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def _crop_center(image: Image.Image, width: int, height: int) -> Image.Image:
    """common_upscale's centre crop to the target aspect ratio."""
    old_width, old_height = image.size
    old_aspect, new_aspect = old_width / old_height, width / height
    x = y = 0
    if old_aspect > new_aspect:
        x = round((old_width - old_width * (new_aspect / old_aspect)) / 2)
    elif old_aspect < new_aspect:
        y = round((old_height - old_height * (old_aspect / new_aspect)) / 2)
    return image.crop((x, y, old_width - x, old_height - y))


class ImageScale(Node):
    def run(self, image: ImageBatch, upscale_method: str, width: int, height: int, crop: str) -> NodeResult:
        if width == 0 and height == 0:
            return NodeResult((image,))
        old_width, old_height = image.images[0].size
        if width == 0:
            width = max(1, round(old_width * height / old_height))
        elif height == 0:
            height = max(1, round(old_height * width / old_width))
        sources = [_crop_center(i, width, height) if crop == "center" else i for i in image.images]
        scaled = tuple(i.resize((width, height), _RESAMPLE[upscale_method]) for i in sources)
        return NodeResult((ImageBatch(scaled),))


class MaskToImage(Node):
    def run(self, mask: MaskBatch) -> NodeResult:
        return NodeResult((ImageBatch(tuple(m.convert("RGB") for m in mask.masks)),))


def _png_info(prompt: dict[str, Any] | None, extra_pnginfo: dict[str, Any] | None) -> PngInfo:
    info = PngInfo()
    if prompt is not None:
        info.add_text("prompt", json.dumps(prompt))
    for key, value in (extra_pnginfo or {}).items():
        info.add_text(key, json.dumps(value))
    return info


class SaveImage(Node):
    kind = "output"
    compress_level = 4
    prefix_append = ""

    def folder(self) -> str:
        return str(self.config.output_dir)

    def run(
        self, images: ImageBatch, filename_prefix: str = "ComfyUI", prompt: dict[str, Any] | None = None,
        extra_pnginfo: dict[str, Any] | None = None,
    ) -> NodeResult:
        width, height = images.images[0].size
        prefix = filename_prefix + self.prefix_append
        folder, filename, counter, subfolder = get_save_image_path(prefix, self.folder(), width, height)
        results = []
        for batch_number, image in enumerate(images.images):
            file = f"{filename.replace('%batch_num%', str(batch_number))}_{counter + batch_number:05}_.png"
            info = _png_info(prompt, extra_pnginfo)
            image.save(os.path.join(folder, file), pnginfo=info, compress_level=self.compress_level)
            results.append({"filename": file, "subfolder": subfolder, "type": self.kind})
        # 0.33.0 declares the images as an output too (0.3.64 declares none, so nothing can link to it there)
        return NodeResult(outputs=(images,), ui={"images": results})


class PreviewImage(SaveImage):
    kind = "temp"
    compress_level = 1

    def __init__(self, config: DoubleConfig) -> None:
        super().__init__(config)
        self.prefix_append = "_temp_" + "".join(random.choice("abcdefghijklmnopqrstupvxyz") for _ in range(5))

    def folder(self) -> str:
        return str(self.config.temp_dir)


class SaveAnimatedWEBP(Node):
    """comfy_extras/nodes_images.py: every frame in one animated WebP; `animated` tells the page it moves."""

    methods = {"default": 4, "fastest": 0, "slowest": 6}

    def run(
        self, images: ImageBatch, filename_prefix: str, fps: float, lossless: bool, quality: int, method: str,
        prompt: dict[str, Any] | None = None, extra_pnginfo: dict[str, Any] | None = None,
    ) -> NodeResult:
        width, height = images.images[0].size
        folder, filename, counter, subfolder = get_save_image_path(filename_prefix, str(self.config.output_dir),
                                                                   width, height)
        file = f"{filename}_{counter:05}_.webp"
        first, *rest = images.images
        first.save(os.path.join(folder, file), save_all=True, duration=int(1000.0 / fps), append_images=rest,
                   lossless=lossless, quality=quality, method=self.methods[method])
        return NodeResult(ui={"images": [{"filename": file, "subfolder": subfolder, "type": "output"}],
                              "animated": [len(images.images) != 1]})


class SaveImageWebsocket(Node):
    """custom_nodes/websocket_image_save.py: progress 0..n-1 of n, each with the image as a PNG preview."""

    @staticmethod
    def is_changed(config: DoubleConfig, images: object = None) -> float:
        return time.time()

    def steps(self, inputs: dict[str, Any]) -> list[Step]:
        images = inputs["images"].images
        return [(index, len(images), ("PNG", image, None)) for index, image in enumerate(images)]

    def run(self, images: ImageBatch) -> NodeResult:
        return NodeResult()


class CheckpointLoaderSimple(Node):
    def run(self, ckpt_name: str) -> NodeResult:
        return NodeResult(tuple(ModelStandIn(kind, ckpt_name) for kind in ("MODEL", "CLIP", "VAE")))


class LoraLoader(Node):
    def run(
        self, model: ModelStandIn, clip: ModelStandIn, lora_name: str, strength_model: float, strength_clip: float
    ) -> NodeResult:
        if strength_model == 0 and strength_clip == 0:
            return NodeResult((model, clip))
        return NodeResult((
            replace(model, loras=(*model.loras, f"{lora_name}:{strength_model}")),
            replace(clip, loras=(*clip.loras, f"{lora_name}:{strength_clip}")),
        ))


class CLIPTextEncode(Node):
    def run(self, text: str, clip: ModelStandIn) -> NodeResult:
        return NodeResult((Conditioning(text, clip),))


class EmptyLatentImage(Node):
    def run(self, width: int, height: int, batch_size: int = 1) -> NodeResult:
        size = (width // LATENT_SCALE, height // LATENT_SCALE)
        return NodeResult((Latent(*size, (EMPTY_LATENT_COLOUR,) * batch_size),))


def _blend(start: tuple[int, int, int], end: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    r, g, b = (round(s + (e - s) * t) for s, e in zip(start, end, strict=True))
    return r, g, b


class KSampler(Node):
    """Model-free sampler: the result colour derives from every sampling input, so seeds differ."""

    def _sample(self, inputs: dict[str, Any]) -> Latent:
        latent: Latent = inputs["latent_image"]
        keys = ("seed", "steps", "cfg", "sampler_name", "scheduler", "denoise")
        settings = [inputs[k] for k in keys]
        conditioning = (inputs["positive"].text, inputs["negative"].text, inputs["model"].loras)
        colours = tuple(colour_from(*settings, *conditioning, i, c) for i, c in enumerate(latent.colours))
        return replace(latent, colours=colours)

    def steps(self, inputs: dict[str, Any]) -> list[Step]:
        total = inputs["steps"]
        if not self.config.latent_previews:
            return [(step, total, None) for step in range(1, total + 1)]
        latent, target = inputs["latent_image"], self._sample(inputs)
        return [
            (step, total, ("JPEG", _latent_preview(latent, target, step / total), PREVIEW_MAX_SIZE))
            for step in range(1, total + 1)
        ]

    def run(self, **inputs: object) -> NodeResult:
        return NodeResult((self._sample(inputs),))


def _latent_preview(start: Latent, end: Latent, t: float) -> Image.Image:
    """latent2rgb stand-in: the latent-sized image moving from the start colour to the result."""
    return Image.new("RGB", (end.width, end.height), _blend(start.colours[0], end.colours[0], t))


class VAEDecode(Node):
    def run(self, samples: Latent, vae: ModelStandIn) -> NodeResult:
        size = (samples.width * LATENT_SCALE, samples.height * LATENT_SCALE)
        return NodeResult((ImageBatch(tuple(Image.new("RGB", size, c) for c in samples.colours)),))


class VAEEncode(Node):
    def run(self, pixels: ImageBatch, vae: ModelStandIn) -> NodeResult:
        width, height = pixels.images[0].size
        means = [ImageStat.Stat(image).mean for image in pixels.images]
        colours = tuple((round(r), round(g), round(b)) for r, g, b in means)
        return NodeResult((Latent(width // LATENT_SCALE, height // LATENT_SCALE, colours),))


NODE_CLASSES: dict[str, type[Node]] = {
    cls.__name__: cls
    for cls in (
        KSampler, CheckpointLoaderSimple, CLIPTextEncode, VAEDecode, VAEEncode, EmptyLatentImage, SaveImage,
        PreviewImage, LoadImage, LoadImageMask, ImageScale, ImageInvert, EmptyImage, LoraLoader, MaskToImage,
        SaveImageWebsocket, SaveAnimatedWEBP,
    )
}
