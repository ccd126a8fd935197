"""update_folder: five successive updates of a version (edits, additions, deletions, a
document that moves) search like a full rebuild of the same corpus, for a flat, an IVF,
an HNSW and a binary IVF index; the previous version's files are shared, never written."""

from __future__ import annotations

import hashlib
import os

import numpy as np
import pytest

from indexes import BuildConfig, choose_index, open_index
from indexes.ann.serialize import deserialize_index, serialize_index, write_index
from indexes.ann.spec import make_index
from indexes.ann.train import add_vectors, train_index
from indexes.building.assemble import assemble_folder
from indexes.storage.files import sha256
from indexes.storage.ids import chunk_id
from indexes.storage.part_files import encode_part, file_entry
from indexes.storage.part_ranges import split_by_part
from indexes.storage.tables import folder_data
from indexes.updates.folder import UpdatePolicy, discard_update, update_folder
from tests.support.indexes import clustered

N_PARTS = 4
D = 32
KEEP = UpdatePolicy(compact_fraction=1.0, retrain_fraction=1.0, max_recall_drop=1.0)


class Corpus:
    """Documents of one chunk each: id -> vector; edits, additions, deletions, moves."""

    def __init__(self, encoding: str, n: int = 400, seed: int = 0) -> None:
        self.encoding = encoding
        self.rng = np.random.default_rng(seed)
        self.docs = {f"doc-{i}": self._vector(i) for i in range(n)}
        self.next = n
        self.deleted: set[str] = set()

    def _vector(self, i: int) -> np.ndarray:
        x = clustered(1, D, seed=10_000 + i)[0]
        if self.encoding == "ubinary":
            return np.packbits(x > 0)
        return x

    def step(self, edits: int = 6, adds: int = 6, deletes: int = 6) -> None:
        names = sorted(self.docs)
        picked = self.rng.choice(len(names), edits + deletes + 1, replace=False)
        for j in picked[:edits]:
            self.docs[names[j]] = self._vector(self.next)
            self.next += 1
        for j in picked[edits : edits + deletes]:
            del self.docs[names[j]]
            self.deleted.add(names[j])
        moved = names[picked[-1]]  # the same text under another file's document id
        self.docs[f"moved-{self.next}"] = self.docs.pop(moved)
        self.deleted.add(moved)
        self.next += 1
        for _ in range(adds):
            self.docs[f"doc-{self.next}"] = self._vector(self.next)
            self.next += 1

    def data(self):
        names = sorted(self.docs)
        xb = np.stack([self.docs[n] for n in names])
        meta = {
            "document_id": names,
            "chunk": [0] * len(names),
            "text": [f"text of {n}" for n in names],
            "content_hash": [hashlib.sha256(self.docs[n].tobytes()).hexdigest() for n in names],
        }
        return folder_data(xb, meta, encoding=self.encoding)

    def deleted_ids(self) -> np.ndarray:
        return np.array([chunk_id(n, 0) for n in self.deleted if n not in self.docs], np.int64)


def _write_parts(out, data, spec, trained):
    """The parts (and IVF shards) as the index job's workers write them."""
    (out / "parts").mkdir(parents=True)
    parts = []
    for number, lo, hi in split_by_part(data.ids, N_PARTS):
        info, blobs = encode_part(
            number,
            data.table.slice(lo, hi - lo),
            data.xb[lo:hi],
            None,
            encoding=data.encoding,
            dimensions=data.dimensions,
        )
        for name, blob in blobs.items():
            (out / name).write_bytes(blob)
        record = {
            "part": number,
            "info": info.as_dict(),
            "files": {name: file_entry(blob) for name, blob in blobs.items()},
            "rescore_dtype": None,
            "index": None,
        }
        if spec.nlist:
            index = deserialize_index(trained, spec.encoding)
            add_vectors(index, data.xb[lo:hi], data.ids[lo:hi], spec)
            record["index"] = str(out.parent / f"{out.name}-shard-{number:05d}.faiss")
            write_index(index, record["index"])
        parts.append(record)
    return parts


def _version(out, corpus: Corpus, factory: str, previous=None, policy=KEEP):
    """Write a version of ``corpus``: updated from ``previous``, else built in full."""
    data = corpus.data()
    spec = choose_index(len(data.ids), data.dimensions, corpus.encoding, factory=factory)
    trained = serialize_index(train_index(spec, data.xb, seed=0))
    parts = _write_parts(out, data, spec, trained)
    config = BuildConfig(eval_queries=100)
    if previous is not None:
        outcome = update_folder(
            out, previous, spec=spec, parts=parts, model="m", config=config, policy=policy
        )
        if outcome.manifest is not None:
            return outcome
        discard_update(out)
    assemble_folder(out, spec=spec, trained=trained, parts=parts, model="m", config=config)
    return None


def _recall(corpus: Corpus, xq: np.ndarray, I: np.ndarray, k: int = 10) -> float:  # noqa: E741
    """recall@k against exact search, ties counted: a result is right when it is as near
    as the k-th nearest (Hamming distances tie often)."""
    data = corpus.data()
    if corpus.encoding == "ubinary":
        bits = np.unpackbits(data.xb, axis=1).astype(np.int32)
        qb = np.unpackbits(xq, axis=1).astype(np.int32)
        score = -(qb[:, None, :] != bits[None, :, :]).sum(-1).astype(np.float64)
    else:
        score = (xq @ data.xb.T).astype(np.float64)
    kth = -np.sort(-score, axis=1)[:, k - 1]
    rows = np.searchsorted(data.ids, I)
    got = np.take_along_axis(score, np.minimum(rows, data.ids.size - 1), axis=1)
    return float(((got >= kth[:, None] - 1e-6) & (I >= 0)).sum() / I.size)


def _files(folder) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256(p) for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("encoding", "factory"),
    [("float", "Flat"), ("float", "IVF8,Flat"), ("float", "HNSW16"), ("ubinary", "BIVF8")],
)
def test_five_updates_search_like_a_rebuild(tmp_path, encoding, factory):
    corpus = Corpus(encoding)
    xq = clustered(40, D, seed=99)
    if encoding == "ubinary":
        xq = np.packbits(xq > 0, axis=1)
    _version(tmp_path / "v0", corpus, factory)
    prev = tmp_path / "v0"
    for step in range(1, 6):
        before = _files(prev)
        corpus.step()
        out, full = tmp_path / f"v{step}", tmp_path / f"full{step}"
        outcome = _version(out, corpus, factory, previous=prev)
        assert outcome is not None, "the update gave way to a rebuild"
        _version(full, corpus, factory)
        assert _files(prev) == before  # the previous version is untouched
        seg = outcome.manifest.segments
        assert seg["delta"]["count"] > 0 and seg["tombstones"]["count"] > 0
        # The main index is shared with the previous version, not written again.
        for name in outcome.manifest.index_files:
            assert os.path.samefile(out / name, tmp_path / "v0" / name)
        a, b = open_index(out), open_index(full)
        assert a.manifest.count == b.manifest.count == len(corpus.docs)
        ra, rb = a.search(xq, 10), b.search(xq, 10)
        assert not np.isin(ra.I, corpus.deleted_ids()).any()
        if factory == "Flat":
            np.testing.assert_array_equal(ra.I, rb.I)
            np.testing.assert_allclose(ra.D, rb.D, rtol=1e-6, atol=1e-6)
        else:
            assert _recall(corpus, xq, ra.I) >= _recall(corpus, xq, rb.I) - 0.01, step
        prev = out


def test_compaction_removes_ids_from_a_flat_index(tmp_path):
    corpus = Corpus("float")
    _version(tmp_path / "v0", corpus, "Flat")
    corpus.step(edits=30, adds=10, deletes=10)  # > 10% of the index: compact
    outcome = _version(tmp_path / "v1", corpus, "Flat", tmp_path / "v0", UpdatePolicy())
    seg = outcome.manifest.segments
    assert seg["compacted"] and seg["delta"]["count"] == seg["tombstones"]["count"] == 0
    assert not os.path.samefile(tmp_path / "v1/index.faiss", tmp_path / "v0/index.faiss")
    _version(tmp_path / "full", corpus, "Flat")
    xq = clustered(20, D, seed=5)
    a, b = open_index(tmp_path / "v1").search(xq, 10), open_index(tmp_path / "full").search(xq, 10)
    np.testing.assert_array_equal(a.I, b.I)


def test_policy_rebuilds_hnsw_past_the_compaction_threshold(tmp_path):
    corpus = Corpus("float")
    _version(tmp_path / "v0", corpus, "HNSW16")
    prev = tmp_path / "v0"
    corpus.step(edits=30, adds=10, deletes=10)
    data = corpus.data()
    spec = choose_index(len(data.ids), data.dimensions, "float", factory="HNSW16")
    parts = _write_parts(tmp_path / "v1", data, spec, serialize_index(make_index(spec)))
    outcome = update_folder(tmp_path / "v1", prev, spec=spec, parts=parts, model="m")
    assert outcome.manifest is None and "cannot remove ids" in outcome.reason


def test_policy_retrains_ivf_past_the_added_fraction(tmp_path):
    corpus = Corpus("float")
    _version(tmp_path / "v0", corpus, "IVF8,Flat")
    corpus.step(edits=0, adds=120, deletes=0)  # 121 added of 521 > 0.2
    data = corpus.data()
    spec = choose_index(len(data.ids), data.dimensions, "float", factory="IVF8,Flat")
    trained = serialize_index(train_index(spec, data.xb, seed=0))
    parts = _write_parts(tmp_path / "v1", data, spec, trained)
    policy = UpdatePolicy(compact_fraction=1.0)
    outcome = update_folder(
        tmp_path / "v1", tmp_path / "v0", spec=spec, parts=parts, model="m", policy=policy
    )
    assert outcome.manifest is None and "retrain" in outcome.reason
    rebuild = update_folder(
        tmp_path / "v1",
        tmp_path / "v0",
        spec=spec,
        parts=parts,
        model="m",
        policy=UpdatePolicy(rebuild=True),
    )
    assert rebuild.manifest is None and "--rebuild" in rebuild.reason


def test_an_unchanged_rerun_shares_every_file_but_the_small_ones(tmp_path):
    corpus = Corpus("float")
    _version(tmp_path / "v0", corpus, "HNSW16")
    outcome = _version(tmp_path / "v1", corpus, "HNSW16", previous=tmp_path / "v0")
    m = outcome.manifest
    assert outcome.stats["stale"] == outcome.stats["fresh"] == 0
    assert m.segments["delta"]["count"] == m.segments["tombstones"]["count"] == 0
    own = {"delta.faiss", "tombstones.npy"}
    for name in set(m.files) - own:
        assert os.path.samefile(tmp_path / "v1" / name, tmp_path / "v0" / name), name
    assert all((tmp_path / "v1" / name).stat().st_nlink == 1 for name in own)
    assert m.lexical == open_index(tmp_path / "v0").manifest.lexical


def test_discarding_an_update_unshares_its_files(tmp_path):
    """Before a rebuild writes into the new folder, nothing in it is a link to the
    previous version's files (the rebuild must not write through a link)."""
    corpus = Corpus("float")
    _version(tmp_path / "v0", corpus, "IVF8,Flat")
    before = _files(tmp_path / "v0")
    outcome = _version(tmp_path / "v1", corpus, "IVF8,Flat", previous=tmp_path / "v0")
    assert outcome.stats["shared_files"] > 0
    discard_update(tmp_path / "v1")
    left = [p for p in (tmp_path / "v1").rglob("*") if p.is_file()]
    assert all(p.stat().st_nlink == 1 for p in left)
    assert not (tmp_path / "v1" / "index.faiss").exists()
    assert not (tmp_path / "v1" / "delta.faiss").exists()
    for p in left:  # each is written over, as a rebuild may
        p.write_bytes(b"rebuilt")
    assert _files(tmp_path / "v0") == before
