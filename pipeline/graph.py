"""The index job's Beam graph: read, chunk, reuse, embed, build shards, write failures.

    ReadDocuments --> ChunkDocuments --\\
    ReadImages ------------------------+--> ReuseVectors --> EmbedTexts / EmbedImages
                                                 |                    |
                                                 +------ reused ------+--> BuildIndexShards
    failures of every step --> failures-*.parquet                          (shard files)

Everything it writes goes under ``staging``; the job merges from there.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import apache_beam as beam
import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from inference.client import ClientSettings
from transforms import (
    Chunk,
    ChunkDocuments,
    EmbedImages,
    EmbedTexts,
    ImageItem,
    ReadDocuments,
    ReadImages,
)
from transforms.index_shards import BuildIndexShards
from transforms.reuse import ReuseVectors
from transforms.thumbnails import WriteThumbnails

__all__ = ["FAILURE_SCHEMA", "THUMBNAILS", "GraphConfig", "build_graph", "read_shard_list"]

FAILURE_SCHEMA = pa.schema(
    [
        ("source_id", pa.string()),
        ("uri", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
    ]
)
SHARD_LIST = "shards.jsonl"
THUMBNAILS = "thumbnails"  # image thumbnails, moved into the version (transforms.thumbnails)


@dataclass(frozen=True, kw_only=True)
class GraphConfig:
    inputs: tuple[str, ...]
    staging: str
    settings: ClientSettings
    input_type: str
    max_tokens: int
    overlap_tokens: int | None
    text_field: str
    id_field: str | None
    factory: str | None
    memory_budget: int
    shards: int
    previous: str | None


def _failure_row(f) -> dict:
    return {
        "source_id": f.source_id,
        "uri": f.uri,
        "stage": f.stage,
        "error": f.error,
        "message": f.message,
    }


def build_graph(p: beam.Pipeline, cfg: GraphConfig) -> None:
    """Add the index job's steps to ``p``."""
    docs, read_failures = p | "ReadDocuments" >> ReadDocuments(
        list(cfg.inputs), text_field=cfg.text_field, id_field=cfg.id_field
    )
    images, image_failures = p | "ReadImages" >> ReadImages(list(cfg.inputs), unknown_files="skip")
    _, thumbnail_failures = images | "Thumbnails" >> WriteThumbnails(f"{cfg.staging}/{THUMBNAILS}")
    chunks, chunk_failures = docs | "Chunk" >> ChunkDocuments(
        max_tokens=cfg.max_tokens, overlap_tokens=cfg.overlap_tokens
    )
    reused = []
    if cfg.previous:
        items = (chunks, images) | "Items" >> beam.Flatten()
        old, to_embed = items | "Reuse" >> ReuseVectors(
            cfg.previous, encoding=cfg.settings.encoding_format
        )
        reused = [old]
        chunks = to_embed | "NewChunks" >> beam.Filter(lambda x: isinstance(x, Chunk))
        images = to_embed | "NewImages" >> beam.Filter(lambda x: isinstance(x, ImageItem))
    texts, text_failures = chunks | "EmbedTexts" >> EmbedTexts(
        cfg.settings, input_type=cfg.input_type
    )
    pictures, picture_failures = images | "EmbedImages" >> EmbedImages(
        cfg.settings, input_type=cfg.input_type
    )
    embedded = (texts, pictures, *reused) | "Embedded" >> beam.Flatten()
    shards, index_failures = embedded | "BuildIndex" >> BuildIndexShards(
        cfg.staging,
        encoding=cfg.settings.encoding_format,
        factory=cfg.factory,
        memory_budget=cfg.memory_budget,
        shards=cfg.shards,
    )
    _ = (
        shards
        | "ShardJson" >> beam.Map(json.dumps)
        | "ShardList" >> beam.io.WriteToText(f"{cfg.staging}/{SHARD_LIST}", shard_name_template="")
    )
    failures = (
        read_failures,
        image_failures,
        chunk_failures,
        text_failures,
        picture_failures,
        index_failures,
        thumbnail_failures,
    ) | "Failures" >> beam.Flatten()
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


def read_shard_list(staging: str) -> list[dict]:
    """The shard files ``BuildIndexShards`` wrote, in shard order."""
    path = f"{staging}/{SHARD_LIST}"
    if not FileSystems.exists(path):
        return []
    with FileSystems.open(path) as f:
        rows = [json.loads(line) for line in f.read().decode("utf-8").splitlines() if line]
    return sorted(rows, key=lambda r: r["shard"])
