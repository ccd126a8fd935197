"""The settings of the session's reference endpoint (``conftest.endpoint``), and images
as the data URLs it takes."""

from __future__ import annotations

import base64
import io

from PIL import Image

KEY = "test-key-0123456789"
BLOCKED = "forbiddenword"
SMALL_LIMITS = {
    "max_inputs": 16,
    "max_input_tokens": 64,
    "max_request_bytes": 512 * 1024,
    "max_image_bytes": 100_000,
    "max_image_pixels": 1_000_000,
}


def data_url(image: Image.Image, fmt: str = "PNG", **save) -> str:
    """``image`` as a ``data:image/<fmt>;base64,`` URL."""
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return f"data:image/{fmt.lower()};base64,{base64.b64encode(buf.getvalue()).decode()}"
