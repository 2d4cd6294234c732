"""The values that flow between the double's nodes (ComfyUI passes torch tensors; the double passes Pillow)."""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from PIL import Image, ImageOps

PREVIEW_IMAGE = 1  # protocol.BinaryEventTypes
PREVIEW_IMAGE_WITH_METADATA = 4
LATENT_SCALE = 8  # an SD latent pixel covers 8x8 image pixels
PREVIEW_MAX_SIZE = 512  # ComfyUI's latent previews are contained in 512x512


@dataclass(frozen=True)
class ImageBatch:
    """ComfyUI's IMAGE: a batch of same-sized RGB images."""

    images: tuple[Image.Image, ...]

    def __str__(self) -> str:
        width, height = self.images[0].size
        return f"ImageBatch({len(self.images)}x{height}x{width}x3)"


@dataclass(frozen=True)
class MaskBatch:
    """ComfyUI's MASK: a batch of 'L' images where 255 means fully masked."""

    masks: tuple[Image.Image, ...]

    def __str__(self) -> str:
        width, height = self.masks[0].size
        return f"MaskBatch({len(self.masks)}x{height}x{width})"


@dataclass(frozen=True)
class Latent:
    """ComfyUI's LATENT, reduced to its size and one colour per batch item that VAEDecode paints."""

    width: int
    height: int
    colours: tuple[tuple[int, int, int], ...]

    def __str__(self) -> str:
        return f"Latent({len(self.colours)}x4x{self.height}x{self.width})"


@dataclass(frozen=True)
class ModelStandIn:
    """MODEL, CLIP or VAE of the model-free SD pipeline: a name plus the LoRAs applied to it."""

    kind: str
    name: str
    loras: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Conditioning:
    """CONDITIONING: the encoded text, kept as text."""

    text: str
    clip: ModelStandIn


def colour_from(*parts: object) -> tuple[int, int, int]:
    """A stable RGB colour derived from the parts, so different seeds give different pixels."""
    digest = hashlib.sha256(json.dumps([str(p) for p in parts]).encode()).digest()
    return digest[0], digest[1], digest[2]


def encode_image(kind: str, image: Image.Image, max_size: int | None) -> bytes:
    """Encode a preview the way PromptServer.send_image does (JPEG quality 95, PNG level 1)."""
    if max_size is not None:
        image = ImageOps.contain(image, (max_size, max_size), Image.Resampling.BILINEAR)
    buffer = BytesIO()
    image.save(buffer, format=kind, quality=95, compress_level=1)
    return buffer.getvalue()


def preview_frame(kind: str, image: Image.Image, max_size: int | None) -> bytes:
    """Binary PREVIEW_IMAGE frame: u32 event type, u32 format (1 JPEG, 2 PNG), image bytes."""
    header = struct.pack(">II", PREVIEW_IMAGE, 2 if kind == "PNG" else 1)
    return header + encode_image(kind, image, max_size)


def preview_frame_with_metadata(kind: str, image: Image.Image, max_size: int | None, metadata: dict[str, Any]) -> bytes:
    """Binary PREVIEW_IMAGE_WITH_METADATA frame: u32 type, u32 JSON length, JSON, image bytes."""
    metadata = {**metadata, "image_type": "image/png" if kind == "PNG" else "image/jpeg"}
    meta = json.dumps(metadata).encode()
    return struct.pack(">II", PREVIEW_IMAGE_WITH_METADATA, len(meta)) + meta + encode_image(kind, image, max_size)
