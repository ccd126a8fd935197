"""The index job's Beam graph: read, chunk, reuse, embed, build shards, write failures.

    ReadDocuments --> ChunkDocuments --\\
    ReadImages ------------------------+--> ReuseVectors --> EmbedTexts / EmbedImages
                                                 |                    |
                                                 +------ reused ------+--> BuildIndexShards
    failures of every step --> failures-*.parquet                  (parts, shard files)

The parts of the new version go straight into its ``folder``; runs, IVF shards, the
trained index and the part list under ``staging``; the job assembles from there.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import apache_beam as beam
import pyarrow as pa

from corpusbeam.inference.client import ClientSettings
from corpusbeam.inference.token_budget import TokenBudget
from indexes.config import AutoLimits
from transforms import (
    ChunkDocuments,
    EmbedImages,
    EmbedTexts,
    ReadDocuments,
    ReadImages,
)
from transforms.build_index import PART_LIST, BuildIndexShards, read_part_list
from transforms.previous import PreviousVersion
from transforms.reuse import ReuseVectors
from transforms.thumbnails import WriteThumbnails

__all__ = [
    "FAILURE_SCHEMA",
    "PART_LIST",
    "THUMBNAILS",
    "GraphConfig",
    "build_graph",
    "read_part_list",
]

FAILURE_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("uri", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
    ]
)
THUMBNAILS = "thumbnails"  # image thumbnails in the version folder (transforms.thumbnails)


@dataclass(frozen=True, kw_only=True)
class GraphConfig:
    inputs: tuple[str, ...]
    staging: str
    folder: str
    settings: ClientSettings
    input_type: str
    max_tokens: int
    overlap_tokens: int | None
    text_field: str
    id_field: str | None
    factory: str | None
    memory_budget: int
    auto_limits: AutoLimits
    shards: int
    previous: PreviousVersion | None  # the version to reuse vectors from
    encoding: str | None = None  # the index's (None: settings.encoding_format, the wire's)
    rescored: bool = False  # vectors carry derived rescoring vectors (binary indexes)
    budget: TokenBudget | None = None  # the model's input limit (corpusbeam.inference.token_budget)
    # a layered update's unchanged documents: path -> [size, mtime]; not read again, their
    # rows stay in the base parts (``transforms.build_index``)
    skip: dict | None = None
    lexical: bool = True  # each part's BM25 segment, written by the worker writing the part
    # train the index and write IVF shards (False: an update that keeps the live index;
    # ``pipeline.training`` trains later if the update must rebuild after all)
    train: bool = True
    # read images (False: the inputs' listing holds none, and the image steps are left
    # out of the graph: a smaller graph starts and runs faster, which an update notices)
    images: bool = True


def _failure_row(f) -> dict:
    return {
        "source_id": f.source_id,
        "uri": f.uri,
        "stage": f.stage,
        "error": f.error,
        "message": f.message,
    }


def _with_skipped(previous: PreviousVersion | None, skip: dict | None) -> PreviousVersion | None:
    """The part writer's ``previous``: with the files not read again (their rows stay)."""
    if previous is None:
        return None
    return replace(previous, skipped=tuple(sorted(skip or {})))


def build_graph(p: beam.Pipeline, cfg: GraphConfig) -> None:
    """Add the index job's steps to ``p``."""
    docs, read_failures = p | "ReadDocuments" >> ReadDocuments(
        list(cfg.inputs), text_field=cfg.text_field, id_field=cfg.id_field, skip=cfg.skip
    )
    encoding = cfg.encoding or cfg.settings.encoding_format
    chunks, chunk_failures = docs | "Chunk" >> ChunkDocuments(
        max_tokens=cfg.max_tokens, overlap_tokens=cfg.overlap_tokens, budget=cfg.budget
    )
    failures = [read_failures, chunk_failures]
    reused, kept = [], []
    # ReuseVectors refers the rows it keeps to this run's parts.
    previous = replace(cfg.previous, shards=cfg.shards) if cfg.previous else None
    if previous:  # chunks and images each decided in their own stage: nothing meets
        old_texts, chunks, kept_texts = chunks | "ReuseTexts" >> ReuseVectors(
            previous, encoding=encoding
        )
        reused, kept = [old_texts], [kept_texts]
    texts, text_failures = chunks | "EmbedTexts" >> EmbedTexts(
        cfg.settings, input_type=cfg.input_type, encoding=encoding, budget=cfg.budget
    )
    embedded = [texts]
    failures.append(text_failures)
    if cfg.images:
        images, image_failures = p | "ReadImages" >> ReadImages(
            list(cfg.inputs), unknown_files="skip"
        )
        # Written by the workers straight into the version's folder, beside its parts.
        _, thumbnail_failures = images | "Thumbnails" >> WriteThumbnails(
            f"{cfg.folder}/{THUMBNAILS}"
        )
        if previous:
            old_images, images, kept_images = images | "ReuseImages" >> ReuseVectors(
                previous, encoding=encoding
            )
            reused.append(old_images)
            kept.append(kept_images)
        pictures, picture_failures = images | "EmbedImages" >> EmbedImages(
            cfg.settings, input_type=cfg.input_type, encoding=encoding
        )
        embedded.append(pictures)
        failures += [image_failures, picture_failures, thumbnail_failures]
    # Each branch writes its vectors to run files in the stage that made them.
    _, index_failures = (*embedded, *reused, *kept) | "BuildIndex" >> BuildIndexShards(
        cfg.staging,
        folder=cfg.folder,
        encoding=encoding,
        factory=cfg.factory,
        memory_budget=cfg.memory_budget,
        auto_limits=cfg.auto_limits,
        shards=cfg.shards,
        previous=_with_skipped(cfg.previous, cfg.skip),
        kept=len(kept),
        lexical=cfg.lexical,
        train=cfg.train,
    )
    failures = (*failures, index_failures) | "Failures" >> beam.Flatten()
    _ = (
        failures
        | "FailureRows" >> beam.Map(_failure_row)
        | "WriteFailures"
        >> beam.io.WriteToParquet(
            f"{cfg.staging}/failures",
            FAILURE_SCHEMA,
            file_name_suffix=".parquet",
            shard_name_template="-SSSSS-of-NNNNN",
        )
    )
