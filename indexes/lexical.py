"""The lexical (BM25) index of an index folder: segments of the chunks' text plus removed
ids, searched as one index with keyword queries and filtered like the dense index.

The files (``indexes.lexical_segments`` writes them): one folder ``lexical/<name>/`` a
segment (ids, document lengths, the vocabulary as sorted 64-bit term hashes, term-major
postings of raw term frequencies), and ``.npy`` files of removed chunk ids; the
manifest's ``lexical`` entry lists both (``lexical_info``). Every array is memory-mapped
at search time and a query reads only its terms' postings in each segment.

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
matches. ``LexicalIndex.count`` is the live rows.

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

from indexes.lexical_segments import (
    LEXICAL_DIR,
    SEGMENT_FILES,
    build_lexical,
    encode_segment,
    lexical_info,
    term_hashes,
)
from indexes.lexical_tokens import TOKENIZER, tokenize
from inference.errors import ConfigError, IndexFolderError

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


def _load(path: Path, dtype: type, ndim: int = 1) -> np.ndarray:
    """``path``'s array, memory-mapped (an empty one read), checked for dtype and rank."""
    if not path.is_file():
        raise IndexFolderError(f"{path}: the manifest lists a lexical index file that is missing")
    try:
        x = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError:  # an empty array cannot be mapped
        x = np.load(path, allow_pickle=False)
    if x.dtype != dtype or x.ndim != ndim:
        raise IndexFolderError(f"{path}: expected a {ndim}-d {np.dtype(dtype)} array")
    # A plain ndarray over the same mapping: np.memmap's slicing costs microseconds a call.
    return x.view(np.ndarray)


class _Segment:
    """One segment's arrays, memory-mapped, and which of its rows are live."""

    def __init__(self, path: Path, entry: dict) -> None:
        self.path = path
        self.name = entry["name"]
        files = [_load(path / f, t) for f, t in zip(SEGMENT_FILES, _DTYPES, strict=True)]
        self.ids, self.lengths, self.terms, self.indptr, self.rows, self.tf = files
        n = int(entry["count"])
        if self.ids.shape[0] != n or self.lengths.shape[0] != n:
            raise IndexFolderError(f"{path}: the segment's ids and lengths disagree on the count")
        if self.indptr.shape[0] != self.terms.shape[0] + 1 or self.tf.shape != self.rows.shape:
            raise IndexFolderError(f"{path}: the segment's postings are inconsistent")
        if int(self.indptr[-1]) != self.rows.shape[0]:
            raise IndexFolderError(f"{path}: the segment's postings are inconsistent")
        self.live: np.ndarray | None = None  # a row mask, None when every row is live
        self.norm = np.zeros(0, np.float32)  # set by LexicalIndex: needs the global avgdl

    def spans(self, hashes: np.ndarray) -> list[tuple[int, int]]:
        """The postings span of each of ``hashes`` (empty where the segment lacks it)."""
        out = []
        if self.terms.shape[0]:
            at = np.searchsorted(self.terms, hashes)
            for h, t in zip(hashes.tolist(), at.tolist(), strict=True):
                if t < self.terms.shape[0] and int(self.terms[t]) == h:
                    out.append((int(self.indptr[t]), int(self.indptr[t + 1])))
                    continue
                out.append((0, 0))
        else:
            out = [(0, 0)] * len(hashes)
        return out


_DTYPES = (np.int64, np.float32, np.int64, np.int64, np.int32, np.float32)


def _removed(folder: Path, files: list[str]) -> np.ndarray:
    """The removed ids of every listed file, sorted and unique."""
    parts = [np.asarray(_load(folder / f, np.int64)) for f in files]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _in_sorted(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """Mask of the ``values`` found in ``sorted_ids`` (ascending)."""
    if sorted_ids.size == 0:
        return np.zeros(values.shape[0], dtype=bool)
    at = np.searchsorted(sorted_ids, values).clip(max=sorted_ids.size - 1)
    return sorted_ids[at] == values


def _mark_live(segments: list[_Segment], removed: np.ndarray) -> None:
    """Set each segment's ``live`` mask: newest segment wins, removed ids never match
    unless re-added over an older segment's row (see the module's docstring)."""
    bounds = [(int(s.ids[0]), int(s.ids[-1])) for s in segments if s.ids.shape[0]]
    overlap = any(
        a[0] <= b[1] and b[0] <= a[1] for i, a in enumerate(bounds) for b in bounds[i + 1 :]
    )
    if not overlap:  # id-range parts: no id in two segments
        for s in segments:
            dead = _in_sorted(np.asarray(s.ids), removed)
            s.live = ~dead if dead.any() else None
        return
    ids = np.concatenate([np.asarray(s.ids) for s in segments])
    seg = np.repeat(np.arange(len(segments)), [s.ids.shape[0] for s in segments])
    order = np.lexsort((seg, ids))  # by id, then oldest segment first
    sid = ids[order]
    first = np.r_[True, sid[1:] != sid[:-1]]
    last = np.r_[sid[1:] != sid[:-1], True]
    live_sorted = last & (~first | ~_in_sorted(sid, removed))
    live = np.empty(ids.shape[0], dtype=bool)
    live[order] = live_sorted
    offset = 0
    for s in segments:
        n = s.ids.shape[0]
        mask = live[offset : offset + n]
        s.live = None if mask.all() else mask.copy()
        offset += n


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
        self.segments = [_Segment(folder / s["dir"], s) for s in info["segments"]]
        self.removed = _removed(folder, list(info.get("removed", [])))
        _mark_live(self.segments, self.removed)
        self.rows = sum(s.ids.shape[0] for s in self.segments)  # N, removed rows included
        length = sum(int(s["length"]) for s in info["segments"])
        self.avgdl = length / self.rows if self.rows and length else 1.0
        for s in self.segments:  # k1 (1 - b + b dl / avgdl) of each row, 4 bytes a row
            s.norm = (
                self.k1 * ((1 - self.b) + self.b * np.asarray(s.lengths) / self.avgdl)
            ).astype(np.float32)
        self.count = sum(
            s.ids.shape[0] if s.live is None else int(s.live.sum()) for s in self.segments
        )

    @property
    def ids(self) -> np.ndarray:
        """The live rows' chunk ids, ascending."""
        live = [np.asarray(s.ids) if s.live is None else s.ids[s.live] for s in self.segments]
        return np.sort(np.concatenate(live)) if live else np.zeros(0, np.int64)

    def _terms(self, query: str) -> np.ndarray:
        return term_hashes(sorted(set(tokenize(query))))

    def _segment_scores(self, query: str) -> Iterator[tuple[_Segment, np.ndarray]]:
        """Each segment and the BM25 score of each of its rows (float64; 0: no match)."""
        hashes = self._terms(query)
        spans = [s.spans(hashes) for s in self.segments]
        df = np.zeros(hashes.size, dtype=np.float64)
        for row in spans:
            df += [b - a for a, b in row]
        idf = np.log1p((self.rows - df + 0.5) / (df + 0.5)).astype(np.float32)
        for s, row in zip(self.segments, spans, strict=True):
            used = [(t, a, b) for t, (a, b) in enumerate(row) if b > a]
            if not used:
                yield s, np.zeros(0)
                continue
            rows = np.concatenate([s.rows[a:b] for _, a, b in used])
            tf = np.concatenate([s.tf[a:b] for _, a, b in used])
            w = tf / (tf + s.norm[rows])
            w *= np.repeat(idf[[t for t, _, _ in used]], [b - a for _, a, b in used])
            yield s, np.bincount(rows, weights=w, minlength=s.ids.shape[0])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row of every segment for ``query`` (float32, the segments'
        rows one after the other; removed and shadowed rows scored too)."""
        out = []
        for s, sc in self._segment_scores(query):
            out.append(sc if sc.size else np.zeros(s.ids.shape[0]))
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def search(
        self, queries: Sequence[str], k: int, *, allowed_ids: np.ndarray | None = None
    ) -> LexicalResult:
        """The ``k`` best live rows for each query; with ``allowed_ids`` (the ids a filter
        allows) only those rows are ranked."""
        if isinstance(queries, str):
            raise ConfigError("queries", queries[:40], "pass a list of strings")
        if k < 1:
            raise ConfigError("k", k, "must be >= 1")
        allowed = None
        if allowed_ids is not None:
            allowed = np.asarray(allowed_ids, dtype=np.int64)
            if allowed.size > 1 and not (allowed[1:] > allowed[:-1]).all():
                allowed = np.unique(allowed)
        D = np.zeros((len(queries), k), dtype=np.float32)
        I = np.full((len(queries), k), -1, dtype=np.int64)  # noqa: E741
        for q, query in enumerate(queries):
            found_s, found_i = [], []
            for s, sc in self._segment_scores(query):
                rows = np.flatnonzero(sc > 0)
                if s.live is not None:
                    rows = rows[s.live[rows]]
                cand = s.ids[rows]
                if allowed is not None:
                    keep = _in_sorted(cand, allowed)
                    rows, cand = rows[keep], cand[keep]
                found_s.append(sc[rows].astype(np.float32))
                found_i.append(np.asarray(cand))
            if not found_s:
                continue
            scores, ids = np.concatenate(found_s), np.concatenate(found_i)
            if scores.size > k:
                top = np.argpartition(-scores, k - 1)[:k]
                # everything tied with the k-th score competes on id
                top = np.flatnonzero(scores >= scores[top].min())
                scores, ids = scores[top], ids[top]
            # best first; equal scores in id order, so results do not depend on the sort
            best = np.lexsort((ids, -scores))[:k]
            D[q, : best.size] = scores[best]
            I[q, : best.size] = ids[best]
        return LexicalResult(D=D, I=I)


def open_lexical(folder: str | os.PathLike, info: dict | None) -> LexicalIndex | None:
    """The lexical index of the index folder ``folder`` described by the manifest's
    ``lexical`` entry ``info``; None when the folder has none."""
    if not info:
        return None
    path = Path(folder) / info.get("dir", LEXICAL_DIR)
    if not path.is_dir():
        raise IndexFolderError(f"{path}: the manifest lists a lexical index that is missing")
    return LexicalIndex(Path(folder), info)
