"""Writing the lexical (BM25) index: one segment's files from its chunks' text, as bytes.

A lexical index is a list of segments plus removed ids (``indexes.lexical.index`` searches them
as one index). A segment is a folder ``lexical/<name>/`` (``name``: the part it indexes,
``part-00003``, ``delta-00003``, or ``seg-00000`` for a folder built in one process)::

    ids.npy       int64, one a row: the chunk ids, ascending and unique
    lengths.npy   float32, one a row: the row's number of tokens (its document length)
    terms.npy     int64, one a term, ascending: the first 8 bytes of blake2b(token)
    indptr.npy    int64, terms + 1: term t's postings are [indptr[t], indptr[t + 1])
    rows.npy      int32, one a posting: the row, ascending within a term
    tf.npy        float32, one a posting: the term's frequency in that row
    blockptr.npy  int64, terms + 1: term t's blocks of 128 postings are
                  [blockptr[t], blockptr[t + 1]) (since the block maxima, Dec 2026)
    blockmax.npy  float32, one a block: the largest BM25 term weight in the block, for
                  the segment's own k1, b and average length (``indexes.lexical.blocks``)

The manifest's segment entry records those (``blocks``: ``size``, ``k1``, ``b``,
``avgdl``); a segment without the entry (written before) is read and its block maxima
derived the first time a query reads it.

The postings are term-major (CSC) and hold raw term frequencies, not scores: BM25 needs
the document count, each term's document frequency and the average document length of
the *whole* index, which only the reader knows (it sums them over the segments). The
vocabulary is the sorted array of 64-bit term hashes, memory-mapped and looked up with
``searchsorted``, not a dict of strings: a reader holds no per-term Python objects. Two
tokens whose hashes collide in one segment are refused (``ConfigError``); at 64 bits
that takes about 4 billion distinct tokens.

``encode_segment`` returns the files as bytes, so a Beam worker can write them to any
filesystem, and the segment's manifest entry; it holds that segment's postings and one
block of tokens, never the texts. ``lexical_info`` makes the manifest's ``lexical`` entry
from the segments' entries. ``build_lexical`` writes a whole index into a local folder
as segments of at most ``SEGMENT_ROWS`` rows (memory bounded by one segment).
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from corpusbeam.errors import ConfigError
from indexes.lexical.analyzer import TOKENIZER
from indexes.lexical.blocks import BLOCK, BLOCK_FILES, avgdl_of, block_maxima
from indexes.lexical.termids import TermIds

__all__ = [
    "K1",
    "LEXICAL_DIR",
    "SEGMENT_FILES",
    "SEGMENT_ROWS",
    "B",
    "build_lexical",
    "encode_segment",
    "lexical_info",
    "term_hashes",
]

LEXICAL_DIR = "lexical"
SEGMENT_FILES = ("ids.npy", "lengths.npy", "terms.npy", "indptr.npy", "rows.npy", "tf.npy")
SEGMENT_ROWS = 1_000_000  # build_lexical's rows a segment
K1 = 1.5
B = 0.75
_BLOCK = 50_000  # documents tokenized before their postings are counted


def term_hashes(tokens: Iterable[str]) -> np.ndarray:
    """The 64-bit hash (int64) of each token: the first 8 bytes of its blake2b."""
    return np.fromiter(
        (
            int.from_bytes(
                hashlib.blake2b(t.encode(), digest_size=8).digest(), "little", signed=True
            )
            for t in tokens
        ),
        dtype=np.int64,
    )


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
    from blocks in doc order whose postings come in runs of one term, docs ascending. A
    counting sort: each block's postings go straight to their place and the block is
    freed, so the postings are held about twice at most, not in several sorted copies."""
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


def _npy(x: np.ndarray) -> bytes:
    out = io.BytesIO()
    np.save(out, np.ascontiguousarray(x), allow_pickle=False)
    return out.getvalue()


def _check_ids(ids: np.ndarray) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
        raise ConfigError("ids", ids.shape, "expected a 1-d array of integer chunk ids")
    ids = ids.astype(np.int64, copy=False)
    if ids.size > 1 and not (ids[1:] > ids[:-1]).all():
        raise ConfigError("ids", "unsorted", "a lexical segment's ids must be ascending and unique")
    return ids


def encode_segment(
    name: str, ids: np.ndarray, texts: Iterable[str | None]
) -> tuple[dict, dict[str, bytes]]:
    """Segment ``name``'s files as bytes (folder-relative path under ``lexical/<name>/`` ->
    bytes) and its manifest entry ``{"name", "dir", "count", "length", "terms",
    "postings"}`` (``length``: the rows' tokens in all, for the average document length).

    ``ids``: the rows' chunk ids (int64, ascending and unique), one a text of ``texts`` in
    the same order; a None or empty text (an image without caption) matches nothing.
    """
    if not name or "/" in name or name.startswith("."):
        raise ConfigError("name", name, "a segment name is one plain folder name")
    ids = _check_ids(ids)
    numbers = TermIds()
    blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    lengths: list[np.ndarray] = []
    buf: list[int] = []
    lens: list[int] = []
    n = 0

    def flush() -> None:
        nonlocal buf, lens
        if lens:
            length = np.asarray(lens, dtype=np.int64)
            blocks.append(_postings(np.asarray(buf, np.int64), length, n - len(lens)))
            lengths.append(length.astype(np.float32))
        buf, lens = [], []

    for text in texts:
        lens.append(numbers.extend(buf, text))
        n += 1
        if len(lens) >= _BLOCK:
            flush()
    flush()
    if n != len(ids):
        raise ConfigError("texts", n, f"expected one text a chunk id ({len(ids)})")
    if n >= 1 << 31:
        raise ConfigError("texts", n, "at most 2**31 - 1 chunks a lexical segment")
    hashes = term_hashes(numbers.vocab)
    del numbers
    order = np.argsort(hashes, kind="stable")
    hashes = hashes[order]
    if hashes.size > 1 and not (hashes[1:] != hashes[:-1]).all():
        raise ConfigError("texts", name, "two tokens of this segment have the same 64-bit hash")
    rank = np.empty_like(order, dtype=np.int32)
    rank[order] = np.arange(order.size, dtype=np.int32)
    # A term's run stays one run when renumbered: the counting sort places it by rank.
    blocks = [(rank[t], d, f) for t, d, f in blocks]
    rows, tf, indptr = _term_major(blocks, int(hashes.size))
    doc_len = np.concatenate(lengths) if lengths else np.zeros(0, np.float32)
    folder = f"{LEXICAL_DIR}/{name}"
    length = int(doc_len.sum(dtype=np.float64))
    avgdl = avgdl_of(n, length)
    maxima = block_maxima(indptr, rows, tf, doc_len, k1=K1, b=B, avgdl=avgdl)
    arrays = dict(zip(SEGMENT_FILES, (ids, doc_len, hashes, indptr, rows, tf), strict=True))
    arrays.update(zip(BLOCK_FILES, maxima, strict=True))
    files = {f"{folder}/{file}": _npy(x) for file, x in arrays.items()}
    entry = {
        "name": name,
        "dir": folder,
        "count": n,
        "length": length,
        "terms": int(hashes.size),
        "postings": int(rows.size),
        "blocks": {"size": BLOCK, "k1": K1, "b": B, "avgdl": avgdl},
    }
    return entry, files


def lexical_info(segments: list[dict], removed: list[str], *, k1: float = K1, b: float = B) -> dict:
    """The manifest's ``lexical`` entry: ``{"dir", "tokenizer", "k1", "b", "count",
    "terms", "postings", "segments", "removed"}``. ``segments``: the segments' entries
    (``encode_segment``), oldest first; ``removed``: folder-relative ``.npy`` files of
    removed chunk ids (int64), written by the caller. ``count``, ``terms`` and
    ``postings`` add up the segments' (rows still counted when removed or shadowed; terms
    counted once a segment)."""
    names = [s["name"] for s in segments]
    if len(set(names)) != len(names):
        raise ConfigError("segments", names, "segment names must be unique")
    for f in removed:
        if not f.endswith(".npy"):
            raise ConfigError("removed", f, "removed ids are .npy files of int64 ids")
    return {
        "dir": LEXICAL_DIR,
        "tokenizer": TOKENIZER,
        "k1": k1,
        "b": b,
        "count": sum(int(s["count"]) for s in segments),
        "terms": sum(int(s["terms"]) for s in segments),
        "postings": sum(int(s["postings"]) for s in segments),
        "segments": [dict(s) for s in segments],
        "removed": list(removed),
    }


def _take(texts: Iterator[str | None], n: int) -> Iterator[str | None]:
    for _ in range(n):
        text = next(texts, StopIteration)
        if text is StopIteration:
            return
        yield text  # type: ignore[misc]


def build_lexical(
    folder: str | os.PathLike,
    ids: np.ndarray,
    texts: Iterable[str | None],
    *,
    segment_rows: int = SEGMENT_ROWS,
) -> dict:
    """Write ``folder/lexical/`` for the chunks ``ids`` (int64, ascending, one a text in the
    order of ``texts``) as segments ``seg-00000``, ... of ``segment_rows`` rows (the last
    one smaller), with no removed ids. Returns the manifest's ``lexical`` entry."""
    ids = _check_ids(ids)
    if isinstance(segment_rows, bool) or not isinstance(segment_rows, int) or segment_rows < 1:
        raise ConfigError("segment_rows", segment_rows, "must be a positive integer")
    out = Path(folder)
    it = iter(texts)
    segments = []
    for number, lo in enumerate(range(0, max(len(ids), 1), segment_rows)):
        chunk = ids[lo : lo + segment_rows]
        entry, files = encode_segment(f"seg-{number:05d}", chunk, _take(it, len(chunk)))
        for rel, blob in files.items():
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            (out / rel).write_bytes(blob)
        segments.append(entry)
    if next(it, StopIteration) is not StopIteration:
        raise ConfigError("texts", "more", f"expected one text a chunk id ({len(ids)})")
    return lexical_info(segments, [])
