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

from dataclasses import replace

import apache_beam as beam
import pyarrow as pa

from pipeline.job.plan import JobPlan
from transforms import (
    ChunkDocuments,
    EmbedImages,
    EmbedTexts,
    ReadDocuments,
    ReadImages,
)
from transforms.build_index import PART_LIST, BuildIndexShards, read_part_list
from transforms.previous import PreviousVersion
from transforms.record_reuse import ReadChangedRecords
from transforms.resume import ResumeFromCheckpoints
from transforms.reuse import ReuseVectors
from transforms.thumbnails import WriteThumbnails
from transforms.token_cap import TokenCap

__all__ = [
    "FAILURE_SCHEMA",
    "PART_LIST",
    "THUMBNAILS",
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


def _failure_row(f) -> dict:
    return {
        "source_id": f.source_id,
        "uri": f.uri,
        "stage": f.stage,
        "error": f.error,
        "message": f.message,
    }


def _with_skipped(previous: PreviousVersion | None, skip) -> PreviousVersion | None:
    """The part writer's ``previous``: with the files not read again (their rows stay)."""
    if previous is None:
        return None
    return replace(previous, skipped=tuple(sorted(skip or {})))


def _read_documents(p: beam.Pipeline, plan: JobPlan) -> tuple:
    """(documents, failures, [the kept records' references]): a layered update of record
    files leaves out the records the live version holds as they are (``plan.records``)."""
    cfg = plan.config
    options = {"text_field": cfg.text_field, "id_field": cfg.id_field, "skip": plan.skip}
    if not plan.records or plan.previous is None:
        docs, failures = p | "ReadDocuments" >> ReadDocuments(list(cfg.inputs), **options)
        return docs, failures, []
    previous = replace(plan.previous, shards=cfg.shards)
    read = p | "ReadDocuments" >> ReadChangedRecords(list(cfg.inputs), previous=previous, **options)
    return read.main, read.failures, [read.kept]


def _resume(items, checkpoints: str | None, reused: list, label: str):
    """``items`` less those the checkpoints hold, which join ``reused``."""
    if not checkpoints:
        return items
    resumed, items = items | label >> ResumeFromCheckpoints(checkpoints)
    reused.append(resumed)
    return items


def build_graph(
    p: beam.Pipeline, plan: JobPlan, *, staging: str, folder: str, checkpoints: str | None = None
) -> None:
    """Add the index job's steps to ``p``: the plan's, writing the parts into ``folder``
    and the run's scratch files under ``staging``; embedded batches persisted under
    ``checkpoints`` and what they hold taken from there (``transforms.resume``)."""
    cfg, encoding = plan.config, plan.encodings.index
    cap = TokenCap(cfg.max_embed_tokens, staging) if cfg.max_embed_tokens else None
    embed = {"checkpoints": checkpoints, "cap": cap}
    docs, read_failures, kept_records = _read_documents(p, plan)
    chunks, chunk_failures = docs | "Chunk" >> ChunkDocuments(
        max_tokens=cfg.max_tokens, overlap_tokens=cfg.overlap_tokens, budget=plan.model.budget
    )
    failures = [read_failures, chunk_failures]
    reused, kept = [], []
    # ReuseVectors refers the rows it keeps to this run's parts.
    previous = replace(plan.previous, shards=cfg.shards) if plan.previous else None
    if previous:  # chunks and images each decided in their own stage: nothing meets
        old_texts, chunks, kept_texts = chunks | "ReuseTexts" >> ReuseVectors(
            previous, encoding=encoding
        )
        reused, kept = [old_texts], [kept_texts, *kept_records]
    chunks = _resume(chunks, checkpoints, reused, "ResumeTexts")
    texts, text_failures = chunks | "EmbedTexts" >> EmbedTexts(
        plan.settings,
        input_type=cfg.input_type,
        encodings=plan.encodings,
        budget=plan.model.budget,
        **embed,
    )
    embedded = [texts]
    failures.append(text_failures)
    if plan.images:
        images, image_failures = p | "ReadImages" >> ReadImages(
            list(cfg.inputs), unknown_files="skip"
        )
        # Written by the workers straight into the version's folder, beside its parts.
        _, thumbnail_failures = images | "Thumbnails" >> WriteThumbnails(f"{folder}/{THUMBNAILS}")
        if previous:
            old_images, images, kept_images = images | "ReuseImages" >> ReuseVectors(
                previous, encoding=encoding
            )
            reused.append(old_images)
            kept.append(kept_images)
        images = _resume(images, checkpoints, reused, "ResumeImages")
        pictures, picture_failures = images | "EmbedImages" >> EmbedImages(
            plan.settings, input_type=cfg.input_type, encodings=plan.encodings, **embed
        )
        embedded.append(pictures)
        failures += [image_failures, picture_failures, thumbnail_failures]
    # Each branch writes its vectors to run files in the stage that made them.
    _, index_failures = (*embedded, *reused, *kept) | "BuildIndex" >> BuildIndexShards(
        staging,
        folder=folder,
        encoding=encoding,
        factory=plan.factory,
        memory_budget=cfg.memory_budget,
        auto_limits=cfg.auto_limits,
        shards=cfg.shards,
        previous=_with_skipped(plan.previous, plan.skip),
        kept=len(kept),
        lexical=cfg.lexical,
        train=plan.train,
    )
    failures = (*failures, index_failures) | "Failures" >> beam.Flatten()
    _ = (
        failures
        | "FailureRows" >> beam.Map(_failure_row)
        | "WriteFailures"
        >> beam.io.WriteToParquet(
            f"{staging}/failures",
            FAILURE_SCHEMA,
            file_name_suffix=".parquet",
            shard_name_template="-SSSSS-of-NNNNN",
        )
    )
