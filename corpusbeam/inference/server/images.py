"""Image inputs: data URLs in, Pillow images out, with the size limits checked on the way.

An input's ``image`` must be ``data:image/<format>;base64,<data>``. The decoded size is
checked against ``max_image_bytes`` before decoding (from the base64 length), and the pixel
count against ``max_image_pixels`` from the header, before any pixel is decoded. Anything
Pillow cannot read is ``invalid_image`` (400); a size over a limit is ``image_too_large``
(413, so a client knows to send less). A decoded image is turned upright (EXIF orientation)
and converted to RGB, or RGBA when it has transparency, so models see one of two modes.

Patches (for ``usage.prompt_patches``): the model sees each image scaled so that its longer
side is 224 pixels (the aspect ratio kept), cut into 16x16 patches; an image costs
``ceil(w/16) * ceil(h/16)`` patches of that view: 196 for a square image, fewer for a thin one.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import re

from PIL import Image, ImageOps, UnidentifiedImageError

from corpusbeam.asgi.errors import reject
from corpusbeam.inference.errors import StatusError

__all__ = ["PATCH_SIZE", "VIEW_SIZE", "decode_image", "patch_count"]

VIEW_SIZE = 224
PATCH_SIZE = 16
_DATA_URL = re.compile(r"data:image/([A-Za-z0-9.+-]+);base64,", re.ASCII)


def decode_image(url: str, *, index: int, max_bytes: int, max_pixels: int) -> Image.Image:
    """Decode one ``data:image/...;base64,`` URL, or raise the rejection for ``input[index]``."""
    target = f"input[{index}].image"
    m = _DATA_URL.match(url)
    if m is None:
        raise reject(
            400,
            "invalid_image",
            "image must be a data URL: data:image/<format>;base64,<data>",
            target=target,
        )
    payload = url[m.end() :]
    if len(payload) // 4 * 3 > max_bytes + 2:
        raise _too_large(target, f"image is over {max_bytes} bytes")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise reject(
            400, "invalid_image", "image data is not valid base64", target=target
        ) from None
    if len(raw) > max_bytes:
        raise _too_large(target, f"image is {len(raw)} bytes, over {max_bytes}")
    try:
        image = Image.open(io.BytesIO(raw))
        w, h = image.size
        if w * h > max_pixels:
            raise _too_large(target, f"image is {w}x{h} pixels, over {max_pixels}")
        image.load()
    except StatusError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_large(target, f"image is over {max_pixels} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise reject(
            400, "invalid_image", f"image cannot be decoded ({type(exc).__name__})", target=target
        ) from None
    try:
        return _normalise(image)
    except (OSError, ValueError) as exc:
        raise reject(
            400, "invalid_image", f"image cannot be converted ({type(exc).__name__})", target=target
        ) from None


def _normalise(image: Image.Image) -> Image.Image:
    """Upright (EXIF orientation applied), in RGB, or RGBA when it has transparency."""
    image = ImageOps.exif_transpose(image)
    transparent = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    mode = "RGBA" if transparent else "RGB"
    return image if image.mode == mode else image.convert(mode)


def _too_large(target: str, message: str) -> StatusError:
    return reject(413, "image_too_large", message, target=target)


def patch_count(image: Image.Image) -> int:
    """Patches the model's 224-pixel view of ``image`` takes (see the module docstring)."""
    w, h = image.size
    scale = VIEW_SIZE / max(w, h, 1)
    vw, vh = max(1, round(w * scale)), max(1, round(h * scale))
    return math.ceil(vw / PATCH_SIZE) * math.ceil(vh / PATCH_SIZE)
