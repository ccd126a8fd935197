"""The lexical (BM25) index of an index folder: segments of the chunks' text plus removed
ids, searched as one index with keyword queries and filtered like the dense index.

The files (``indexes.lexical.segment`` writes them): one folder ``lexical/<name>/`` a
segment (ids, document lengths, the vocabulary as sorted 64-bit term hashes, term-major
postings of raw term frequencies), and ``.npy`` files of removed chunk ids; the
manifest's ``lexical`` entry lists both (``lexical_info``). Every array is memory-mapped
at search time and a query reads only its terms' postings in each segment; the reader's
own memory is 4 bytes a row (each row's length normalisation, which needs the global
average length), 1 byte a row more when some rows are removed or shadowed, and about
40 bytes a row for a moment at opening when segments' id ranges overlap (sorting every
id to find the newest row of each). The segments share one row space, so a query sums
its postings with one ``bincount`` whatever the number of segments, a block of
131,072 rows at a time.

Scores are the ``lucene`` variant of BM25 that bm25s computes (idf
``log(1 + (N - df + 0.5) / (df + 0.5))``, ``tf / (tf + k1 (1 - b + b dl / avgdl))``) with
``N``, ``df`` and ``avgdl`` taken over **all** segments, so a corpus split into any
number of segments ranks exactly like one segment of the same rows.

Which rows match (Lucene's way with deletions): segments are listed oldest first. An
id's rows in older segments are shadowed by its row in the newest segment that holds it
(a chunk re-added with new text in a delta segment is found by its new text only). A
row whose id is removed never matches, unless an older segment holds the same id: then
the row is the chunk re-added after its removal from the older segment, and it counts.
Like Lucene, ``N``, ``df`` and ``avgdl`` still count removed and shadowed rows until the
segments are rewritten, so scores drift a little with the removed share, never the
matches. ``LexicalIndex.count`` is the live rows. An update that lists a changed chunk's
id among the removed ids and its new row in a delta segment gets the new row; one that
stacks several delta segments and then deletes a chunk a delta re-added must rewrite or
drop that delta's row (the removed ids cannot tell "deleted" from "changed" there).

``LexicalIndex.search`` takes the allowed ids of a metadata filter (``indexes.filters``) and
ranks only those rows: filters apply before top-k, as in the dense search.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from corpusbeam.errors import ConfigError, IndexFolderError
from indexes.lexical import topk
from indexes.lexical.analyzer import TOKENIZER, tokenize
from indexes.lexical.read import Segment, in_sorted, mark_live, read_removed
from indexes.lexical.segment import (
    LEXICAL_DIR,
    build_lexical,
    encode_segment,
    lexical_info,
    term_hashes,
)
from indexes.lexical.topk import allowed_mask, top_k

_BLOCK_ROWS = 1 << 17  # rows whose scores are summed together (1 MiB of float64)

__all__ = [
    "LEXICAL_DIR",
    "LexicalIndex",
    "LexicalResult",
    "build_lexical",
    "column_texts",
    "encode_segment",
    "lexical_info",
    "open_lexical",
]


def column_texts(table: pa.Table, column: str = "text") -> Iterator[str | None]:
    """The values of ``table``'s ``column``, one batch at a time (None when it has none)."""
    if column not in table.column_names:
        yield from (None for _ in range(table.num_rows))
        return
    for batch in table.column(column).chunks:
        for start in range(0, len(batch), 10_000):
            yield from batch.slice(start, 10_000).to_pylist()


@dataclass(frozen=True)
class LexicalResult:
    """BM25 scores ``D`` and chunk ids ``I``, (nq, k), best first; ``-1`` ids pad rows
    with fewer than k matching documents (a hit matches at least one query term)."""

    D: np.ndarray
    I: np.ndarray  # noqa: E741


class LexicalIndex:
    """A folder's lexical index, memory-mapped. ``open_lexical`` makes one."""

    def __init__(self, folder: Path, info: dict) -> None:
        if info.get("tokenizer") != TOKENIZER:
            raise IndexFolderError(
                f"{folder / info.get('dir', LEXICAL_DIR)}: lexical index built with tokenizer "
                f"{info.get('tokenizer')!r}, this version reads {TOKENIZER!r}"
            )
        if "segments" not in info:
            raise IndexFolderError(
                f"{folder / info.get('dir', LEXICAL_DIR)}: a lexical index in an older format "
                "(one bm25s folder): rebuild the index"
            )
        self.path = folder / info.get("dir", LEXICAL_DIR)
        self.info = info
        self.k1, self.b = float(info["k1"]), float(info["b"])
        self.segments = [Segment(folder / s["dir"], s) for s in info["segments"]]
        self.removed = read_removed(folder, list(info.get("removed", [])))
        mark_live(self.segments, self.removed)
        # One row space over the segments, in order: segment i's rows start at offsets[i].
        sizes = [s.ids.shape[0] for s in self.segments]
        self.offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
        self.rows = int(self.offsets[-1])  # N, removed and shadowed rows included
        length = sum(int(s["length"]) for s in info["segments"])
        self.avgdl = length / self.rows if self.rows and length else 1.0
        # k1 (1 - b + b dl / avgdl) of each row (it needs the global avgdl): 4 bytes a row
        self.norm = np.empty(self.rows, dtype=np.float32)
        for s, lo in zip(self.segments, self.offsets.tolist(), strict=False):
            norm = self.k1 * ((1 - self.b) + self.b * np.asarray(s.lengths) / self.avgdl)
            self.norm[lo : lo + s.ids.shape[0]] = norm
        self.live: np.ndarray | None = None  # 1 byte a row, only when some row is dead
        if any(s.live is not None for s in self.segments):
            self.live = np.concatenate(
                [
                    np.ones(n, bool) if s.live is None else s.live
                    for s, n in zip(self.segments, sizes, strict=True)
                ]
            )
        self.count = self.rows if self.live is None else int(self.live.sum())

    @property
    def ids(self) -> np.ndarray:
        """The live rows' chunk ids, ascending."""
        live = [np.asarray(s.ids) if s.live is None else s.ids[s.live] for s in self.segments]
        return np.sort(np.concatenate(live)) if live else np.zeros(0, np.int64)

    def _ids_of(self, rows: np.ndarray) -> np.ndarray:
        """The chunk ids of the ascending global ``rows``."""
        out = np.empty(rows.shape[0], dtype=np.int64)
        cuts = np.searchsorted(rows, self.offsets).tolist()
        for i, s in enumerate(self.segments):
            lo, hi = cuts[i], cuts[i + 1]
            if hi > lo:
                out[lo:hi] = s.ids[rows[lo:hi] - self.offsets[i]]
        return out

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row of every segment for ``query`` (float64, the segments'
        rows one after the other; removed and shadowed rows scored too; 0: no match)."""
        hashes = term_hashes(sorted(set(tokenize(query))))
        spans = [s.spans(hashes) for s in self.segments]
        df = sum((span[:, 1] - span[:, 0] for span in spans), np.zeros(hashes.size, np.int64))
        idf = np.log1p((self.rows - df + 0.5) / (df + 0.5)).astype(np.float32)
        used = []  # (term, segment, row offset, start, end), block by block of rows
        for seg, off, span in zip(self.segments, self.offsets.tolist(), spans, strict=False):
            found = [(t, a, b) for t, (a, b) in enumerate(span.tolist()) if b > a]
            n = seg.ids.shape[0]
            if n <= _BLOCK_ROWS:
                used += [(t, seg, off, a, b) for t, a, b in found]
                continue
            # A large segment is summed a block of rows at a time (each term's rows are
            # ascending, so a binary search cuts its postings), so that the scores being
            # added stay in cache. A row's terms are still added in the same order.
            bounds = np.arange(_BLOCK_ROWS, n, _BLOCK_ROWS)
            cuts = [
                [a, *(a + np.searchsorted(seg.rows[a:b], bounds)).tolist(), b] for _, a, b in found
            ]
            for j in range(bounds.size + 1):
                used += [
                    (t, seg, off, c[j], c[j + 1])
                    for (t, _, _), c in zip(found, cuts, strict=True)
                    if c[j + 1] > c[j]
                ]
        if not used:
            return np.zeros(self.rows)
        sizes = [b - a for _, _, _, a, b in used]
        rows = np.empty(sum(sizes), dtype=np.intp)  # the rows in the one row space
        np.concatenate([s.rows[a:b] for _, s, _, a, b in used], out=rows, casting="same_kind")
        if len(self.segments) > 1:
            rows += np.repeat([off for _, _, off, _, _ in used], sizes)
        w = np.concatenate([s.tf[a:b] for _, s, _, a, b in used])  # tf, then the weights
        norm = self.norm[rows]
        norm += w
        np.divide(w, norm, out=w)
        w *= np.repeat(idf[[t for t, _, _, _, _ in used]], sizes)
        return np.bincount(rows, weights=w, minlength=self.rows)

    def search(
        self, queries: Sequence[str], k: int, *, allowed_ids: np.ndarray | None = None
    ) -> LexicalResult:
        """The ``k`` best live rows for each query; with ``allowed_ids`` (the ids a filter
        allows) only those rows are ranked."""
        if self.rows < topk.PRUNE_ROWS:  # small: scoring every posting is as quick
            return self.search_exhaustive(queries, k, allowed_ids=allowed_ids)
        allowed = _allowed(queries, k, allowed_ids)
        D = np.zeros((len(queries), k), dtype=np.float32)
        I = np.full((len(queries), k), -1, dtype=np.int64)  # noqa: E741
        mask = allowed_mask(self, allowed)
        for q, query in enumerate(queries):
            hashes = term_hashes(sorted(set(tokenize(query))))
            best, ids = top_k(self, hashes, k, mask)
            D[q, : ids.size] = best
            I[q, : ids.size] = ids
        return LexicalResult(D=D, I=I)

    def search_exhaustive(
        self, queries: Sequence[str], k: int, *, allowed_ids: np.ndarray | None = None
    ) -> LexicalResult:
        """``search`` by scoring every posting of every query term (``scores``): the
        reference the pruned search equals, ids and scores."""
        allowed = _allowed(queries, k, allowed_ids)
        D = np.zeros((len(queries), k), dtype=np.float32)
        I = np.full((len(queries), k), -1, dtype=np.int64)  # noqa: E741
        for q, query in enumerate(queries):
            sc = self.scores(query)
            rows = np.flatnonzero(sc > 0)
            if self.live is not None:
                rows = rows[self.live[rows]]
            if allowed is not None:
                rows = rows[in_sorted(self._ids_of(rows), allowed)]
            best = sc[rows].astype(np.float32)
            if best.size > k:  # the k best, and every row tied with the k-th
                keep = best >= np.partition(best, best.size - k)[best.size - k]
                rows, best = rows[keep], best[keep]
            ids = self._ids_of(rows)
            # best first; equal scores in id order, so results do not depend on the sort
            order = np.lexsort((ids, -best))[:k]
            D[q, : order.size] = best[order]
            I[q, : order.size] = ids[order]
        return LexicalResult(D=D, I=I)


def _allowed(queries: Sequence[str], k: int, allowed_ids: np.ndarray | None) -> np.ndarray | None:
    """The arguments of a search checked; ``allowed_ids`` sorted and unique."""
    if isinstance(queries, str):
        raise ConfigError("queries", queries[:40], "pass a list of strings")
    if k < 1:
        raise ConfigError("k", k, "must be >= 1")
    if allowed_ids is None:
        return None
    allowed = np.asarray(allowed_ids, dtype=np.int64)
    if allowed.size > 1 and not (allowed[1:] > allowed[:-1]).all():
        allowed = np.unique(allowed)
    return allowed


def open_lexical(folder: str | os.PathLike, info: dict | None) -> LexicalIndex | None:
    """The lexical index of the index folder ``folder`` described by the manifest's
    ``lexical`` entry ``info``; None when the folder has none."""
    if not info:
        return None
    path = Path(folder) / info.get("dir", LEXICAL_DIR)
    if not path.is_dir():
        raise IndexFolderError(f"{path}: the manifest lists a lexical index that is missing")
    return LexicalIndex(Path(folder), info)
