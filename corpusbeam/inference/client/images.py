"""Image inputs: data URLs built from bytes or a path, format sniffed from the bytes.

The format in a data URL comes from the image's own magic bytes, never from its file
name: a PNG saved as ``photo.jpg`` is sent as ``image/png``.
"""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from pathlib import Path

from corpusbeam.errors import ConfigError

__all__ = ["ImageInput", "image_data_url", "sniff_image_format"]

_FORMATS = ("png", "jpeg", "webp", "gif")


def sniff_image_format(data: bytes) -> str | None:
    """``png``, ``jpeg``, ``webp`` or ``gif`` from the magic bytes, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def image_data_url(image: bytes | str | os.PathLike[str], *, name: str | None = None) -> str:
    """``data:image/<fmt>;base64,...`` for image bytes or a file path.

    Raises ConfigError naming the input when the bytes are not png, jpeg, webp or gif.
    """
    if isinstance(image, bytes | bytearray | memoryview):
        data = bytes(image)
        label = name or "image bytes"
    else:
        path = Path(image)
        label = name or str(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ConfigError("image", label, f"cannot be read ({exc.strerror})") from None
    fmt = sniff_image_format(data)
    if fmt is None:
        raise ConfigError(
            "image", label, f"is not a {', '.join(_FORMATS)} image (by its first bytes)"
        )
    return f"data:image/{fmt};base64,{base64.b64encode(data).decode('ascii')}"


@dataclass(frozen=True, kw_only=True)
class ImageInput:
    """One input of the image route: an image (bytes or path) and optional text."""

    image: bytes | str | os.PathLike[str]
    text: str | None = None

    def to_wire(self) -> dict[str, str]:
        item = {"image": image_data_url(self.image)}
        if self.text is not None:
            item["text"] = self.text
        return item

    def __repr__(self) -> str:
        what = f"<{len(self.image)} bytes>" if isinstance(self.image, bytes) else str(self.image)
        return f"ImageInput(image={what}, text={self.text!r})"
