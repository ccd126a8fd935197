"""What a dry run knows of the live version: its rows, its calibration, its rate.

``live_rows(previous)`` reads the live version's ``id``, ``document_id``, ``uri`` and
``content_hash`` columns part by part (a layered version's base parts without its removed
ids, then its delta parts), as the job's ``ReuseVectors`` reads ``id`` and
``content_hash``, into sorted int64 arrays: 32 bytes a row, no text kept.

``calibration(report, previous, budget)`` turns the live run's measured ``usage``
(``report.json``'s ``prompt_tokens``) into a ratio of endpoint tokens to this client's
count (``TokenBudget.base``: the model's tokenizer where installed, else UTF-8 bytes / 4):

- a live version whose run embedded every row it holds (a first run, ``--no-reuse``):
  its ``prompt_tokens`` against the count of its rows' texts, read from its metadata;
- else the ratio its workers learned from usage as they ran (``too_long.ratio``), when
  they learned one (a known input limit, ``--token-count`` not ``estimate``) with the
  same kind of count as this machine's;
- else none: the estimate is not calibrated.

``rate(report)`` is the live run's tokens a second through its pipeline.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass

import numpy as np
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from corpusbeam.inference.token_budget import TokenBudget
from indexes.storage.part_files import METADATA_SUFFIX
from transforms.part_layers import read_removed
from transforms.previous import PreviousVersion
from transforms.reuse import hash_digest

__all__ = ["Calibration", "LiveRows", "calibration", "document_key", "live_rows", "rate"]

_COLUMNS = ["id", "document_id", "uri", "content_hash"]


def document_key(document_id: str) -> int:
    """A document id as a signed 64-bit integer (what the dry run keeps of it)."""
    return int.from_bytes(
        hashlib.blake2b(document_id.encode(), digest_size=8).digest(), "little", signed=True
    )


@dataclass(frozen=True)
class LiveRows:
    """The live version's rows, sorted by ``ids``: content-hash digests (as
    ``transforms.reuse.hash_digest``), document keys (``document_key``) and whether the
    row comes from a file the run does not read again (``skipped``); ``document_set``:
    the document keys, sorted, once each."""

    ids: np.ndarray
    digests: np.ndarray
    documents: np.ndarray
    skipped: np.ndarray
    document_set: np.ndarray

    @classmethod
    def of(cls, ids, digests, documents, skipped) -> LiveRows:
        return cls(ids, digests, documents, skipped, np.unique(documents))

    @classmethod
    def empty(cls) -> LiveRows:
        e = np.empty(0, np.int64)
        return cls.of(e, e, e, np.zeros(0, bool))


def _part_rows(folder: str, name: str, skipped: frozenset[str]) -> tuple[np.ndarray, ...]:
    with FileSystems.open(f"{folder}/{name}{METADATA_SUFFIX}") as f:
        t = pq.read_table(io.BytesIO(f.read()), columns=_COLUMNS)
    col = t.column
    digests = np.fromiter(map(hash_digest, col("content_hash").to_pylist()), np.int64, t.num_rows)
    documents = np.fromiter(map(document_key, col("document_id").to_pylist()), np.int64, t.num_rows)
    skip = np.fromiter((u in skipped for u in col("uri").to_pylist()), bool, t.num_rows)
    return col("id").to_numpy().astype(np.int64), digests, documents, skip


def live_rows(previous: PreviousVersion | None, skipped: frozenset[str] = frozenset()) -> LiveRows:
    """The rows of ``previous`` (None: no live version), those from ``skipped`` files
    (paths the run does not read again) marked."""
    if previous is None:
        return LiveRows.empty()
    got = [_part_rows(previous.folder, p["name"], skipped) for p in previous.parts]
    removed = read_removed(previous.folder, previous.removed)
    if removed.size:
        got = [tuple(a[~np.isin(g[0], removed)] for a in g) for g in got]
    got += [_part_rows(previous.folder, p["name"], skipped) for p in previous.delta_parts]
    if not got:
        return LiveRows.empty()
    ids = np.concatenate([g[0] for g in got])
    order = np.argsort(ids, kind="stable")
    ids, digests, documents, skip = (np.concatenate([g[i] for g in got])[order] for i in range(4))
    return LiveRows.of(ids, digests, documents, skip)


@dataclass(frozen=True)
class Calibration:
    """Endpoint tokens per token of this client's count, and where the ratio comes from."""

    ratio: float
    source: str


def calibration(
    report: dict | None, previous: PreviousVersion | None, budget: TokenBudget
) -> Calibration | None:
    """The ratio (see the module docstring), or None when the live run gives none."""
    if not report:
        return None
    measured = _text_tokens(report)
    counts = report.get("counts", {})
    if measured <= 0:
        return None
    if previous is not None and counts.get("reused", 0) == 0 and counts.get("embedded"):
        counted = _counted(previous, budget)
        if counted > 0:
            return Calibration(
                measured / counted,
                f"the live run's usage ({measured} tokens) against this count of the "
                f"{counts['embedded']} inputs it embedded ({counted})",
            )
    learned = report.get("too_long", {})
    same_count = bool(learned.get("tokenizer")) == (budget.counter is not None)
    if learned.get("mode") != "estimate" and learned.get("limit") and same_count:
        ratio = float(learned.get("ratio") or 0)
        if ratio > 0:
            return Calibration(ratio, "the ratio the live run's workers learned from usage")
    return None


def _text_tokens(report: dict) -> int:
    """The live run's measured tokens of text: ``prompt_tokens`` less the image patches
    the image route counts in it (``prompt_patches``)."""
    requests = report.get("requests", {})
    return int(requests.get("prompt_tokens", 0) or 0) - int(requests.get("prompt_patches", 0) or 0)


def _counted(previous: PreviousVersion, budget: TokenBudget) -> int:
    """This client's count of the live version's texts (chunks and captions), part by part."""
    total = 0
    for p in (*previous.parts, *previous.delta_parts):
        with FileSystems.open(f"{previous.folder}/{p['name']}{METADATA_SUFFIX}") as f:
            t = pq.read_table(io.BytesIO(f.read()), columns=["text"])
        total += sum(budget.base(text) for text in t.column("text").to_pylist() if text)
    return total


def rate(report: dict | None) -> float | None:
    """The live run's endpoint tokens of text a second through its pipeline, or None."""
    if not report:
        return None
    tokens = _text_tokens(report)
    seconds = float(report.get("seconds", {}).get("pipeline", 0) or 0)
    return tokens / seconds if tokens > 0 and seconds > 0 else None
