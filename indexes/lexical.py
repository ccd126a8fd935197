"""The lexical (BM25) index of an index folder: built from the chunks' text, searched with
keyword queries, filtered like the dense index.

Files, in ``lexical/`` inside the folder (each listed with its sha256 in the manifest)::

    data.csc.index.npy  indices.csc.index.npy  indptr.csc.index.npy
                        the (documents x terms) BM25 score matrix, CSC: one column a term
    vocab.index.json    term -> column
    params.index.json   k1, b, method, document count
    ids.npy             the chunk id (int64) of each row, ascending

This is bm25s's on-disk format (``bm25s.BM25.load(..., mmap=True)`` reads it), so the
arrays are memory-mapped at search time and a query reads only its terms' columns. The
scores are bm25s's ``lucene`` variant (idf ``log(1 + (N - df + 0.5) / (df + 0.5))``,
``tf / (tf + k1 (1 - b + b dl / avgdl))``), computed here in blocks of documents so that
building holds the postings and one block's tokens, never the texts
(``build_lexical`` takes any iterable of texts). Tokens: ``indexes.lexical_tokens``.

``LexicalIndex.search`` takes the allowed ids of a metadata filter (``indexes.filters``) and
ranks only those documents: filters apply before top-k, as in the dense search.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from indexes.lexical_tokens import TOKENIZER, tokenize
from inference.errors import ConfigError, IndexFolderError

__all__ = [
    "LEXICAL_DIR",
    "LexicalIndex",
    "LexicalResult",
    "build_lexical",
    "column_texts",
    "open_lexical",
]

LEXICAL_DIR = "lexical"
IDS = "ids.npy"
K1 = 1.5
B = 0.75
_BLOCK = 50_000  # documents tokenized before their postings are counted
_SLICE = 1 << 20  # postings scored at a time


def _postings(
    tokens: np.ndarray, lengths: np.ndarray, first_doc: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(term, doc, tf) of one block's (doc, term) pairs, sorted by term then doc."""
    docs = np.repeat(np.arange(first_doc, first_doc + len(lengths), dtype=np.int64), lengths)
    keys = tokens.astype(np.int64) * (1 << 32) + docs
    keys, tf = np.unique(keys, return_counts=True)
    return (keys >> 32).astype(np.int32), (keys & 0xFFFFFFFF).astype(np.int32), tf.astype(np.int32)


def _term_major(
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]], terms: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(doc int32, tf float32, indptr) in term-major order, docs ascending within a term,
    from blocks in doc order whose postings are sorted by term then doc. A counting sort:
    each block's postings go straight to their place and the block is freed, so the
    postings are held about twice at most, not in several sorted copies."""
    df = np.zeros(terms, dtype=np.int64)
    for term, _, _ in blocks:
        df += np.bincount(term, minlength=terms)
    indptr = np.zeros(terms + 1, dtype=np.int64)
    np.cumsum(df, out=indptr[1:])
    doc = np.empty(int(indptr[-1]), dtype=np.int32)
    tf = np.empty(int(indptr[-1]), dtype=np.float32)
    cursor = indptr[:-1].copy()
    for i, (term, d, f) in enumerate(blocks):
        if term.size:
            starts = np.flatnonzero(np.r_[True, term[1:] != term[:-1]])
            run = np.repeat(starts, np.diff(np.r_[starts, term.size]))
            at = cursor[term] + (np.arange(term.size) - run)
            doc[at], tf[at] = d, f
            cursor[term[starts]] += np.diff(np.r_[starts, term.size])
        blocks[i] = (term[:0], d[:0], f[:0])
    blocks.clear()
    return doc, tf, indptr


def build_lexical(
    folder: str | os.PathLike,
    ids: np.ndarray,
    texts: Iterable[str | None],
    *,
    k1: float = K1,
    b: float = B,
) -> dict:
    """Write ``folder/lexical/`` for the chunks ``ids`` (int64, one a text, in the order of
    ``texts``; a None or empty text, such as an image without caption, matches nothing).
    Returns the manifest's ``lexical`` entry: ``{"dir", "tokenizer", "k1", "b", "count",
    "terms", "postings"}``."""
    import bm25s  # here: the folder writer loads it only when it builds a lexical index

    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1:
        raise ConfigError("ids", ids.shape, "expected a 1-d array of chunk ids")
    vocab: dict[str, int] = {}
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    lengths_all: list[np.ndarray] = []
    buf: list[int] = []
    lens: list[int] = []
    n = 0

    def flush() -> None:
        nonlocal buf, lens
        if lens:
            length = np.asarray(lens, dtype=np.int64)
            blocks.append(_postings(np.asarray(buf, np.int64), length, n - len(lens)))
            lengths_all.append(length)
        buf, lens = [], []

    for text in texts:
        toks = tokenize(text) if text else []
        buf.extend(vocab.setdefault(t, len(vocab)) for t in toks)
        lens.append(len(toks))
        n += 1
        if len(lens) >= _BLOCK:
            flush()
    flush()
    if n != len(ids):
        raise ConfigError("texts", n, f"expected one text a chunk id ({len(ids)})")
    if n >= 1 << 31:
        raise ConfigError("texts", n, "at most 2**31 - 1 chunks a lexical index")
    doc_len = np.concatenate(lengths_all) if lengths_all else np.zeros(0, np.int64)
    doc, tf, indptr = _term_major(blocks, len(vocab))
    df = np.diff(indptr)
    idf = np.log1p((n - df + 0.5) / (df + 0.5)).astype(np.float32)
    avgdl = float(doc_len.mean()) if n and doc_len.sum() else 1.0
    norm = (k1 * ((1 - b) + b * doc_len / avgdl)).astype(np.float32)
    data = tf  # the scores replace the term frequencies, a slice at a time
    term_idf = np.repeat(idf, df)
    for lo in range(0, data.shape[0], _SLICE):
        hi = lo + _SLICE
        f = tf[lo:hi]
        data[lo:hi] = term_idf[lo:hi] * f / (f + norm[doc[lo:hi]])
    del term_idf

    retriever = bm25s.BM25(k1=k1, b=b, method="lucene", backend="numpy")
    retriever.scores = {"data": data, "indices": doc, "indptr": indptr, "num_docs": n}
    retriever.vocab_dict = vocab
    retriever.nonoccurrence_array = None  # the lucene variant has none
    out = Path(folder) / LEXICAL_DIR
    out.mkdir(parents=True, exist_ok=True)
    retriever.save(out, show_progress=False)
    np.save(out / IDS, ids, allow_pickle=False)
    return {
        "dir": LEXICAL_DIR,
        "tokenizer": TOKENIZER,
        "k1": k1,
        "b": b,
        "count": n,
        "terms": len(vocab),
        "postings": int(data.shape[0]),
    }


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

    def __init__(self, path: Path, info: dict) -> None:
        import bm25s

        if info.get("tokenizer") != TOKENIZER:
            raise IndexFolderError(
                f"{path}: lexical index built with tokenizer {info.get('tokenizer')!r}, "
                f"this version reads {TOKENIZER!r}"
            )
        self.path = path
        self.info = info
        self._bm25 = bm25s.BM25.load(path, mmap=True, show_progress=False, verbosity=0)
        self.ids = np.load(path / IDS, mmap_mode="r")
        if self._bm25.scores["num_docs"] != len(self.ids) or len(self.ids) != info["count"]:
            raise IndexFolderError(f"{path}: lexical index and its ids disagree on the count")
        self._vocab = self._bm25.vocab_dict

    @property
    def count(self) -> int:
        return len(self.ids)

    def term_ids(self, query: str) -> np.ndarray:
        """The columns of ``query``'s known terms (each once)."""
        found = {self._vocab[t] for t in tokenize(query) if t in self._vocab}
        return np.asarray(sorted(found), dtype=np.int64)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every row for ``query`` (float32, one a row)."""
        terms = self.term_ids(query)
        if terms.size == 0:
            return np.zeros(self.count, dtype=np.float32)
        # bm25s sums the terms' columns with np.add.at; one bincount over the columns
        # joined is the same sum, several times faster on long posting lists.
        scores = self._bm25.scores
        indptr, indices, data = scores["indptr"], scores["indices"], scores["data"]
        spans = [(int(indptr[t]), int(indptr[t + 1])) for t in terms]
        rows = np.concatenate([indices[a:b] for a, b in spans])
        weights = np.concatenate([data[a:b] for a, b in spans])
        return np.bincount(rows, weights=weights, minlength=self.count).astype(np.float32)

    def allowed_rows(self, allowed_ids: np.ndarray) -> np.ndarray:
        """Boolean mask of the rows whose chunk id is in ``allowed_ids``."""
        return np.isin(self.ids, np.asarray(allowed_ids, dtype=np.int64), assume_unique=True)

    def search(
        self, queries: Sequence[str], k: int, *, allowed_ids: np.ndarray | None = None
    ) -> LexicalResult:
        """The ``k`` best rows for each query; with ``allowed_ids`` (sorted ids a filter
        allows) only those rows are ranked."""
        if isinstance(queries, str):
            raise ConfigError("queries", queries[:40], "pass a list of strings")
        if k < 1:
            raise ConfigError("k", k, "must be >= 1")
        mask = None if allowed_ids is None else self.allowed_rows(allowed_ids)
        D = np.zeros((len(queries), k), dtype=np.float32)
        I = np.full((len(queries), k), -1, dtype=np.int64)  # noqa: E741
        for q, query in enumerate(queries):
            scores = self.scores(query)
            if mask is not None:
                scores = np.where(mask, scores, 0)
            rows = np.flatnonzero(scores > 0)
            if rows.size > k:
                rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
            # best first; equal scores in id order, so results do not depend on the sort
            rows = rows[np.lexsort((rows, -scores[rows]))]
            D[q, : rows.size] = scores[rows]
            I[q, : rows.size] = self.ids[rows]
        return LexicalResult(D=D, I=I)


def open_lexical(folder: str | os.PathLike, info: dict | None) -> LexicalIndex | None:
    """The lexical index of the index folder ``folder`` described by the manifest's
    ``lexical`` entry ``info``; None when the folder has none."""
    if not info:
        return None
    path = Path(folder) / info.get("dir", LEXICAL_DIR)
    if not (path / "params.index.json").is_file():
        raise IndexFolderError(f"{path}: the manifest lists a lexical index that is missing")
    return LexicalIndex(path, info)
