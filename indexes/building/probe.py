"""The recall probe: queries and their exact neighbours, kept with a version and carried
forward by each update at the cost of what changed.

Measuring recall after an update needs the true k nearest of each query over the whole
folder; computed from scratch, that is an exact search over every vector (seconds at
100k vectors, minutes at 10M), whatever the size of the change. A probe keeps, for each
query (a row of the folder, held out of its own results), its ``depth`` = k + ``MARGIN``
exact nearest ids and scores. The next version's lists follow from this one's:

- a query whose own row changed or was deleted leaves the probe;
- its listed neighbours that changed or were deleted leave its list;
- the vectors added or changed are searched exactly (the only search over vectors) and
  merged in by score.

A list that lost ``s`` entries is exact for its first ``depth - s`` places (a row not on
the old list ranked below every kept entry), so it is cut there; a query whose list is
cut below k leaves the probe. When fewer than ``MIN_KEPT`` of the queries remain, the
probe is sampled again with one exact pass (``sample_probe``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from corpusbeam.errors import IndexFolderError
from indexes.ann.train import training_sample
from indexes.building.recall import best_first, streaming_topk

__all__ = [
    "MARGIN",
    "MIN_KEPT",
    "PROBE",
    "RECALL_QUERIES",
    "Probe",
    "advance_probe",
    "load_probe",
    "sample_probe",
]

PROBE = "recall_probe.npz"
MARGIN = 40  # neighbours kept beyond k: what changes may take from a list before it is cut
MIN_KEPT = 0.8  # the share of the queries below which the probe is sampled again
RECALL_QUERIES = 500  # queries a probe holds (at least): recall after an update is measured on


@dataclass(frozen=True)
class Probe:
    """``query_ids`` (nq,), ``xq`` the queries as searched, ``gt_ids``/``gt_scores``
    (nq, depth) best first with -1 past each row's exact length, ``k``, ``reference``
    (what exact means: ``indexes.building.recall``), ``binary`` (Hamming: lower is better)."""

    query_ids: np.ndarray
    xq: np.ndarray
    gt_ids: np.ndarray
    gt_scores: np.ndarray
    k: int
    reference: str
    binary: bool
    sampled: int  # queries when it was sampled: MIN_KEPT is a share of that

    @property
    def queries(self) -> int:
        return int(self.query_ids.size)

    def save(self, folder: Path) -> Path:
        out = io.BytesIO()
        np.savez(
            out,
            query_ids=self.query_ids,
            xq=self.xq,
            gt_ids=self.gt_ids,
            gt_scores=self.gt_scores,
            meta=np.array([self.k, int(self.binary), self.sampled], dtype=np.int64),
            reference=np.array(self.reference),
        )
        path = Path(folder) / PROBE
        tmp = path.with_name(f".{PROBE}.tmp")
        tmp.write_bytes(out.getvalue())
        tmp.replace(path)
        return path


def load_probe(folder: Path) -> Probe | None:
    """The probe a version keeps, or None when it has none."""
    path = Path(folder) / PROBE
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            k, binary, sampled = (int(v) for v in z["meta"])
            return Probe(
                z["query_ids"],
                z["xq"],
                z["gt_ids"],
                z["gt_scores"],
                k,
                str(z["reference"]),
                bool(binary),
                sampled,
            )
    except (OSError, ValueError, KeyError) as exc:
        raise IndexFolderError(f"{path}: cannot be read ({exc})") from None


def sample_probe(reader, queries: int, k: int, *, seed: int) -> Probe:
    """A probe of ``queries`` rows sampled from ``reader`` (``Parts`` or ``LayeredParts``),
    with one exact pass over every vector (``indexes.building.recall.streaming_topk``)."""
    rows = training_sample(reader.count, queries, seed=seed)
    ids, xb, rv = reader.rows(rows)
    xq = xb if rv is None else rv.astype("float32")
    D, I, ref = streaming_topk(reader, xq, k + MARGIN, exclude=ids)  # noqa: E741
    binary = "Hamming" in ref
    return Probe(ids, xq, I, D, k, ref, binary, int(ids.size))


class _Rows:
    """Some rows of a folder, read as ``Parts`` are (for ``streaming_topk``)."""

    def __init__(self, reader, ids: np.ndarray, xb: np.ndarray, rv: np.ndarray | None) -> None:
        self.dimensions, self.encoding = reader.dimensions, reader.encoding
        self.rescore_dtype = reader.rescore_dtype
        self._rows = (ids, xb, rv)

    def iter_vectors(self, *, batch_rows: int | None = None):
        yield self._rows


def advance_probe(probe: Probe, reader, stale: np.ndarray, fresh: np.ndarray) -> Probe | None:
    """The probe of the version ``reader`` reads, from its previous version's ``probe``:
    ``stale`` ids (changed or deleted) leave it, ``fresh`` ids (added or changed: rows of
    ``reader``) are searched exactly and merged in. None when too few queries remain (the
    caller samples a new probe)."""
    stale = np.asarray(stale, dtype=np.int64)
    depth = probe.gt_ids.shape[1]
    keep = ~np.isin(probe.query_ids, stale)
    query_ids, xq = probe.query_ids[keep], probe.xq[keep]
    gt_ids = np.where(np.isin(probe.gt_ids, stale), -1, probe.gt_ids)[keep]
    gt_scores, gt_ids = best_first(probe.gt_scores[keep], gt_ids, depth, binary=probe.binary)
    length = (gt_ids >= 0).sum(axis=1)  # each list is exact for that many places
    fresh = np.asarray(fresh, dtype=np.int64)
    if fresh.size and query_ids.size:
        pos = np.searchsorted(reader.ids(), fresh)
        rows = _Rows(reader, *reader.rows(pos))
        D, I, _ = streaming_topk(rows, xq, depth, exclude=query_ids)  # noqa: E741
        gt_scores, gt_ids = best_first(
            np.hstack([gt_scores, D]), np.hstack([gt_ids, I]), 2 * depth, binary=probe.binary
        )
        # Exact up to the last of the old list's kept entries (a row missing from the old
        # list ranked below all of them); fresh rows after it wait for the cut.
        old = ~np.isin(gt_ids, fresh) & (gt_ids >= 0)
        seen = np.cumsum(old, axis=1)
        last = np.argmax(seen >= np.maximum(length, 1)[:, None], axis=1) + 1
        length = np.where(length > 0, np.minimum(last, depth), 0)
    gt_ids, gt_scores = gt_ids[:, :depth].copy(), gt_scores[:, :depth].copy()
    gt_ids[np.arange(depth)[None, :] >= length[:, None]] = -1
    usable = length >= probe.k
    if usable.sum() == 0 or usable.sum() < MIN_KEPT * probe.sampled:
        return None
    return Probe(
        query_ids[usable],
        xq[usable],
        gt_ids[usable],
        gt_scores[usable],
        probe.k,
        probe.reference,
        probe.binary,
        probe.sampled,
    )
