"""Preparing an image file for the endpoint: decode, orient, downscale, re-encode.

``prepare_image`` keeps the original bytes when they are already fine (a png, jpeg, webp
or gif within the byte and pixel limits, with no EXIF rotation to apply). Otherwise it
applies the EXIF orientation, shrinks the image until it fits both limits, and encodes
it as JPEG (PNG when it has transparency). An image is never rejected for being too
big; only an image that cannot be decoded is.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["ImageLimits", "InvalidImage", "PreparedImage", "prepare_image"]

_SENDABLE = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}
# Pillow refuses to decode past this by default; we decide ourselves, up to a hard cap.
_HARD_PIXEL_CAP = 400_000_000


class InvalidImage(ValueError):
    """The bytes are not an image Pillow can decode; the message says why."""


@dataclass(frozen=True, kw_only=True)
class ImageLimits:
    """What the endpoint takes: bytes of one image, and pixels (width x height)."""

    max_bytes: int = 3_000_000
    max_pixels: int = 16_000_000
    jpeg_quality: int = 90


@dataclass(frozen=True)
class PreparedImage:
    data: bytes
    format: str
    width: int
    height: int
    resized: bool


def prepare_image(data: bytes, limits: ImageLimits) -> PreparedImage:
    """The bytes to send for an image file, within ``limits``; raises InvalidImage."""
    if not data:
        raise InvalidImage("empty file")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except UnidentifiedImageError:
            raise InvalidImage("cannot identify an image format in these bytes") from None
        except Image.DecompressionBombError as exc:
            raise InvalidImage(str(exc)) from None
    width, height = image.size
    if width * height > _HARD_PIXEL_CAP:
        raise InvalidImage(f"{width}x{height} pixels is too large to decode safely")
    fmt = _SENDABLE.get(image.format or "")
    fits = len(data) <= limits.max_bytes and width * height <= limits.max_pixels
    try:
        orientation = image.getexif().get(0x0112, 1)
        if fmt and fits and orientation == 1:
            image.load()  # decode fully: a truncated file fails here
            return PreparedImage(data, fmt, width, height, resized=False)
        return _reencode(image, limits)
    except (OSError, SyntaxError, ValueError) as exc:
        raise InvalidImage(f"cannot decode image: {exc}") from None


def _reencode(image: Image.Image, limits: ImageLimits) -> PreparedImage:
    scale = min(1.0, math.sqrt(limits.max_pixels / (image.width * image.height)))
    if image.format == "JPEG" and scale < 1:
        # Let libjpeg decode at 1/2, 1/4 or 1/8 size: a 40-megapixel JPEG stays cheap.
        image.draft("RGB", (int(image.width * scale) + 1, int(image.height * scale) + 1))
    image = ImageOps.exif_transpose(image)
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    image = image.convert("RGBA" if alpha else "RGB")
    target = _fit(image.width, image.height, limits.max_pixels)
    while True:
        resized = image if target == image.size else image.resize(target, Image.LANCZOS)
        out = io.BytesIO()
        if alpha:
            resized.save(out, format="PNG", optimize=True)
        else:
            resized.save(out, format="JPEG", quality=limits.jpeg_quality)
        if out.tell() <= limits.max_bytes or min(target) <= 16:
            return PreparedImage(out.getvalue(), "png" if alpha else "jpeg", *target, True)
        target = (max(1, int(target[0] * 0.7)), max(1, int(target[1] * 0.7)))


def _fit(width: int, height: int, max_pixels: int) -> tuple[int, int]:
    if width * height <= max_pixels:
        return width, height
    scale = math.sqrt(max_pixels / (width * height))
    return max(1, int(width * scale)), max(1, int(height * scale))
