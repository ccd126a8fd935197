"""Synthetic test pictures: deterministic, distinct, and cheap; as images or encoded."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw


def scene(kind: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """One of a few clearly different pictures (kind 0, 1, 2, ...)."""
    palettes = [
        ((200, 40, 40), (30, 30, 220), (250, 250, 250)),
        ((30, 160, 60), (250, 220, 0), (20, 20, 20)),
        ((240, 240, 240), (120, 60, 10), (0, 150, 200)),
    ]
    bg, fg, accent = palettes[kind % len(palettes)]
    im = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(im)
    w, h = size
    if kind % 3 == 0:
        draw.rectangle([w // 6, h // 6, w // 2, h // 2], fill=fg)
        draw.ellipse([w // 2, h // 2, w - 10, h - 10], fill=accent)
    elif kind % 3 == 1:
        draw.ellipse([w // 4, h // 8, 3 * w // 4, 7 * h // 8], fill=fg)
        draw.line([0, h - 1, w - 1, 0], fill=accent, width=12)
    else:
        for i in range(0, w, 40):
            draw.rectangle([i, 0, i + 18, h], fill=fg)
        draw.rectangle([w // 3, h // 3, 2 * w // 3, 2 * h // 3], fill=accent)
    return im


def near_duplicate(im: Image.Image) -> Image.Image:
    """Resized to 60 %, colours nudged: the same picture to a person."""
    small = im.resize((im.width * 3 // 5, im.height * 3 // 5), Image.Resampling.BILINEAR)
    return small.point(lambda v: min(255, v + 6))


def scene_png(kind: int) -> bytes:
    """``scene(kind)`` encoded as PNG."""
    buf = io.BytesIO()
    scene(kind).save(buf, "PNG")
    return buf.getvalue()


def solid_png(colour=(200, 30, 30), size=(64, 48)) -> bytes:
    """A PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def jpeg(size=(64, 48), colour=(30, 200, 30), orientation: int | None = None) -> bytes:
    """A JPEG of one colour, with an EXIF orientation when ``orientation`` is given."""
    out = io.BytesIO()
    image = Image.new("RGB", size, colour)
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    image.save(out, format="JPEG", quality=85, exif=exif.tobytes())
    return out.getvalue()
