"""Images re-encoded as the caller asked (`options.output.format`), in a thread: decoding and encoding a
4-megapixel image takes a CPU for a good part of a second, which the event loop must not spend. Pillow does
the work (loaded at the first conversion: an agent that never converts does not carry it); a file Pillow cannot
read as an image (a video, audio) passes unchanged, and so does an animation (an animated WebP or PNG, a GIF):
re-encoding it would keep its first frame only."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image

FORMATS = {"png": ("PNG", "image/png"), "webp": ("WEBP", "image/webp"), "jpeg": ("JPEG", "image/jpeg")}


@dataclass(frozen=True)
class Converted:
    data: bytes
    content_type: str
    extension: str


def convert(data: bytes, target: str, quality: int | None) -> Converted | None:
    """The image in `target` (`png`, `webp`, `jpeg`), or None when `data` is not a still image Pillow reads."""
    from PIL import Image as Images
    from PIL import UnidentifiedImageError

    try:
        image: Image = Images.open(io.BytesIO(data))
        image.load()
    except (UnidentifiedImageError, OSError):
        return None
    if getattr(image, "is_animated", False):
        return None
    name, content_type = FORMATS[target]
    if name == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB")  # JPEG has no alpha: it is dropped, as every converter does
    out = io.BytesIO()
    options = {"quality": quality} if quality is not None and name != "PNG" else {}
    image.save(out, name, **options)
    return Converted(out.getvalue(), content_type, "jpg" if target == "jpeg" else target)
