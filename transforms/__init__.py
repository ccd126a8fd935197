"""Beam PTransforms: read, chunk and embed documents and images, losing nothing.

    docs, read_failures = p | ReadDocuments("corpus/")
    chunks, chunk_failures = docs | ChunkDocuments(max_tokens=512)
    embedded, embed_failures = chunks | EmbedTexts(settings)

Every transform returns ``Outputs(main, failures)``; failures are ``Failure`` elements
naming the input, the stage and the reason.
"""

from transforms.chunk import ChunkDocuments
from transforms.elements import Chunk, Document, Embedded, Failure, ImageItem
from transforms.embed import EmbedImages, EmbedTexts
from transforms.read import FAILURES, Outputs, ReadDocuments, ReadImages
from transforms.s3_clients import share_s3_clients

share_s3_clients()  # Beam's S3 filesystem: one boto3 client a process, not one a file

__all__ = [
    "FAILURES",
    "Chunk",
    "ChunkDocuments",
    "Document",
    "EmbedImages",
    "EmbedTexts",
    "Embedded",
    "Failure",
    "ImageItem",
    "Outputs",
    "ReadDocuments",
    "ReadImages",
]
