"""WriteThumbnails: a small JPEG of every image, for the search page's hits.

Each ``ImageItem`` becomes ``<folder>/<id>.jpg`` (``id`` the image's chunk id,
``indexes.storage.ids.chunk_id(document_id, 0)``, the id its hit carries), at most
``THUMBNAIL_SIZE`` pixels on its longer side. The job moves the folder into the new index
version, so the service shows image hits without ever reading users' files at query time.
An image Pillow cannot shrink (it was read, so this is rare) is a ``Failure`` at stage
``thumbnail`` on the failures output, never dropped silently; its vector is still indexed.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from PIL import Image, UnidentifiedImageError

from indexes.storage.ids import chunk_id
from transforms import counters as progress
from transforms.elements import Failure, ImageItem
from transforms.read import FAILURES, Outputs

__all__ = ["THUMBNAIL_SIZE", "WriteThumbnails", "thumbnail_bytes", "thumbnail_name"]

THUMBNAIL_SIZE = 160


def thumbnail_name(document_id: str) -> str:
    return f"{chunk_id(document_id, 0)}.jpg"


def thumbnail_bytes(data: bytes, size: int = THUMBNAIL_SIZE) -> bytes:
    """``data`` (an image file's bytes) as a JPEG at most ``size`` pixels a side."""
    with Image.open(io.BytesIO(data)) as im:
        im.seek(0)  # the first frame of an animation
        im.thumbnail((size, size))
        if im.mode not in ("RGB", "L"):
            rgba = im.convert("RGBA")
            im = Image.new("RGB", rgba.size, "white")
            im.paste(rgba, mask=rgba.getchannel("A"))
        out = io.BytesIO()
        im.save(out, "JPEG", quality=80)
        return out.getvalue()


class _ThumbnailFn(beam.DoFn):
    def __init__(self, folder: str) -> None:
        self._folder = folder
        self._written = progress.counter("thumbnails")

    def process(self, item: ImageItem) -> Iterator:
        try:
            data = thumbnail_bytes(item.data)
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            failure = Failure.of(exc, source_id=item.document_id, uri=item.uri, stage="thumbnail")
            yield beam.pvalue.TaggedOutput(FAILURES, failure)
            return
        with FileSystems.create(f"{self._folder}/{thumbnail_name(item.document_id)}") as f:
            f.write(data)
        self._written.inc()

    def display_data(self) -> dict:
        return {"folder": self._folder, "size": THUMBNAIL_SIZE}


class WriteThumbnails(beam.PTransform):
    """Write a small JPEG of each image under ``folder``, named by the image's id.

    Returns ``Outputs(main=nothing, failures)``."""

    def __init__(self, folder: str) -> None:
        super().__init__()
        self._folder = folder

    def expand(self, images: beam.PCollection) -> Outputs:
        out = images | "Thumbnail" >> beam.ParDo(_ThumbnailFn(self._folder)).with_outputs(
            FAILURES, main="written"
        )
        return Outputs(out.written, out[FAILURES])
