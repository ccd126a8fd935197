"""The dry run's walk over the inputs: the job's reading and chunking, one document at a time.

``walk(plan, live, checkpoints, ratio)`` matches and reads the inputs with the job's own
``transforms.read`` steps and chunks them with ``transforms.chunk``'s (their DoFns'
``process``, called directly: no pipeline), leaves out the files a layered update does not
read again, and compares every chunk (and image) with the live version's rows as
``transforms.reuse`` does (``_Comparison``). What it would send is counted by ``_Counter``:
this client's token count, and requests packed as the client packs them.
"""

from __future__ import annotations

import copy
import math
from array import array
from dataclasses import dataclass, field

import numpy as np

from corpusbeam.inference.client.packing import pack_requests
from corpusbeam.inference.token_budget import TokenBudget, estimate_tokens
from indexes.storage.ids import chunk_id
from pipeline.dry_run_live import LiveRows, document_key
from pipeline.job.plan import JobPlan
from transforms.chunk import ChunkDocuments
from transforms.elements import Chunk, Document, ImageItem
from transforms.read import (
    ReadDocuments,
    ReadImages,
    _MatchFn,
    _ReadDocumentsFn,
    _ReadImagesFn,
    _unchanged_file,
)
from transforms.recut import TooLongError, recut
from transforms.reuse import hash_digest

__all__ = ["Tally", "walk"]


@dataclass
class Tally:
    """The counts a walk over the inputs adds up (internal, mutable)."""

    documents: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("new", "changed", "unchanged", "failed"), 0)
    )
    files_read: int = 0
    files_skipped: int = 0
    chunks: int = 0
    images: int = 0
    to_embed: int = 0
    reused: int = 0
    checkpointed: int = 0
    counted: int = 0  # this client's count of the tokens to embed
    requests: int = 0
    # document keys read, and those with every chunk as live has it: 8 bytes each
    seen: array = field(default_factory=lambda: array("q"))
    same: array = field(default_factory=lambda: array("q"))


def walk(
    plan: JobPlan, live: LiveRows, checkpoints: tuple[np.ndarray, np.ndarray], ratio: float | None
) -> tuple[Tally, np.ndarray]:
    """Read, chunk and compare every input; the tally and which live rows were seen.
    ``checkpoints``: (ids, content-hash digests), sorted, of chunks a killed run embedded;
    ``ratio``: the calibration, for the chunks the workers would cut again."""
    cmp = _Comparison(plan, live, checkpoints, _Counter(plan, ratio))
    _walk_documents(plan, cmp)
    if plan.images:
        _walk_images(plan, cmp)
    cmp.tally.requests = cmp.counter.flush()
    return cmp.tally, cmp.matched


def _walk_documents(plan: JobPlan, cmp: _Comparison) -> None:
    cfg, tally = plan.config, cmp.tally
    reader = ReadDocuments(list(cfg.inputs), text_field=cfg.text_field, id_field=cfg.id_field)
    read_fn = _ReadDocumentsFn(reader._fields, reader._max_document_bytes, reader._max_file_bytes)
    chunk_fn = ChunkDocuments(
        max_tokens=cfg.max_tokens, overlap_tokens=cfg.overlap_tokens, budget=plan.model.budget
    )._fn
    skip = dict(plan.skip or {})
    for meta, rel in _matched(cfg.inputs, _MatchFn("document", "fail")):
        if skip and _unchanged_file(skip, meta):  # as the job's matcher skips it
            tally.files_skipped += 1
            continue
        tally.files_read += 1
        for doc in read_fn.process((meta, rel)):
            chunks = []
            if isinstance(doc, Document):
                chunks = [c for c in chunk_fn.process(doc) if isinstance(c, Chunk)]
            if chunks:
                cmp.add(doc.document_id, chunks)
            else:
                tally.documents["failed"] += 1


def _walk_images(plan: JobPlan, cmp: _Comparison) -> None:
    images = ReadImages(list(plan.config.inputs), unknown_files="skip")
    image_fn = _ReadImagesFn(images._limits, images._captions)
    image_fn.setup()
    for element in _matched(plan.config.inputs, _MatchFn("image", "skip")):
        cmp.tally.files_read += 1
        for item in image_fn.process(element):
            if isinstance(item, ImageItem):
                cmp.tally.images += 1
                cmp.add(item.document_id, [item])
            else:
                cmp.tally.documents["failed"] += 1


def _matched(patterns, match_fn: _MatchFn):
    """(file metadata, relative path) of every matched file (failures are left out: the
    reader reports the files it cannot read, and a pattern matching nothing raises in the
    job's listing first)."""
    for pattern in patterns:
        for out in match_fn.process(pattern):
            if isinstance(out, tuple):
                yield out


class _Comparison:
    """Chunks against the live version, as the job's ``ReuseVectors`` splits them."""

    def __init__(self, plan: JobPlan, live: LiveRows, checkpoints, counter: _Counter) -> None:
        self.live, self.checkpoints, self.counter = live, checkpoints, counter
        self.reuse = plan.previous is not None
        self.matched = np.zeros(live.ids.size, bool)
        self.tally = Tally()

    def add(self, document_id: str, items: list) -> None:
        """One document's chunks (or one image): counted, and the document classified."""
        live, tally = self.live, self.tally
        ids = np.array([chunk_id(document_id, _index(c)) for c in items], np.int64)
        digests = np.array([hash_digest(c.content_hash) for c in items], np.int64)
        found, same = np.zeros(ids.size, bool), np.zeros(ids.size, bool)
        if live.ids.size:
            pos = np.minimum(np.searchsorted(live.ids, ids), live.ids.size - 1)
            found = live.ids[pos] == ids
            same = found & (live.digests[pos] == digests)
            self.matched[pos[found]] = True
        key = document_key(document_id)
        tally.seen.append(key)
        if isinstance(items[0], Chunk):
            tally.chunks += len(items)
        if not found.any() and not _sorted_has(live.document_set, key):
            tally.documents["new"] += 1
        elif same.all():
            tally.same.append(key)  # unchanged, unless one of its live rows is gone
        else:
            tally.documents["changed"] += 1
        kept = same if self.reuse else np.zeros(ids.size, bool)
        tally.reused += int(kept.sum())
        for j in np.flatnonzero(~kept):
            if _sorted_pair(self.checkpoints, ids[j], digests[j]):
                tally.checkpointed += 1
            else:
                tokens, sent = self.counter.add(items[j])
                tally.to_embed += sent
                tally.counted += tokens


def _index(item) -> int:
    return item.chunk_index if isinstance(item, Chunk) else 0


def _sorted_has(values: np.ndarray, key: int) -> bool:
    pos = int(np.searchsorted(values, key))
    return pos < values.size and values[pos] == key


def _sorted_pair(checkpoints: tuple[np.ndarray, np.ndarray], id_: int, digest: int) -> bool:
    ids, digests = checkpoints
    pos = int(np.searchsorted(ids, id_))
    return pos < ids.size and ids[pos] == id_ and digests[pos] == digest


class _Counter:
    """This client's count of what a run sends, and its requests, packed as the client
    packs them: a batch of ``max_concurrency x max_inputs`` inputs at a time."""

    def __init__(self, plan: JobPlan, ratio: float | None) -> None:
        s = plan.settings
        self.budget: TokenBudget = plan.model.budget
        # A chunk the workers' budget (calibrated as they learn) says is too long is cut
        # again before it is sent: mirrored with a copy of the budget at the live ratio.
        self.fit = copy.copy(self.budget) if ratio else None
        if self.fit is not None:
            self.fit.ratio = ratio
        self.batch = s.max_concurrency * s.max_inputs
        self.max_inputs, self.max_weight = s.max_inputs, s.max_request_tokens
        self.images = s.max_images
        self.weights: list[int] = []
        self.image_count = 0
        self.requests = 0

    def add(self, item) -> tuple[int, int]:
        """Count ``item`` (a chunk or an image) as sent: (its tokens by this client's
        count, the inputs it is sent as: the pieces of a chunk cut again, as the run
        counts them)."""
        if isinstance(item, ImageItem):  # its caption's tokens; the image is counted apart
            self.image_count += 1
            return (self.budget.base(item.text) if item.text else 0), 1
        pieces = [item]
        if self.fit is not None and self.fit.usable() is not None and not self.fit.fits(item.text):
            try:
                pieces = recut(item, self.fit)
            except TooLongError:  # fails unsent in the run too
                return 0, 0
        total = 0
        for piece in pieces:
            self.weights.append(estimate_tokens(piece.text))
            if len(self.weights) >= self.batch:
                self._pack()
            total += self.budget.base(piece.text)
        return total, len(pieces)

    def _pack(self) -> None:
        self.requests += len(pack_requests(self.weights, self.max_inputs, self.max_weight))
        self.weights = []

    def flush(self) -> int:
        if self.weights:
            self._pack()
        return self.requests + math.ceil(self.image_count / max(self.images, 1))
