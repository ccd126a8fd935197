"""The recall probe carried forward by updates lists the same neighbours as an exact pass
over the updated vectors (indexes.building.probe)."""

from __future__ import annotations

import numpy as np

from indexes.building.probe import MIN_KEPT, advance_probe, load_probe, sample_probe
from indexes.building.recall import streaming_topk


class Table:
    """An in-memory table of float vectors read like ``indexes.storage.part_reader.Parts``."""

    encoding, rescore_dtype = "float", None

    def __init__(self, ids: np.ndarray, xb: np.ndarray) -> None:
        order = np.argsort(ids)
        self._ids, self._xb = ids[order], xb[order]
        self.dimensions = xb.shape[1]

    @property
    def count(self) -> int:
        return int(self._ids.size)

    def ids(self) -> np.ndarray:
        return self._ids

    def rows(self, positions):
        return self._ids[positions], self._xb[positions], None

    def iter_vectors(self, *, batch_rows=None, rescore=True):
        step = batch_rows or self.count
        for lo in range(0, self.count, step):
            yield self._ids[lo : lo + step], self._xb[lo : lo + step], None


def _vectors(rng, n: int, d: int = 24) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_ten_advanced_probes_list_the_exact_neighbours(tmp_path):
    rng = np.random.default_rng(0)
    vectors = dict(zip(range(4000), _vectors(rng, 4000), strict=True))
    table = Table(np.array(list(vectors)), np.stack(list(vectors.values())))
    probe = sample_probe(table, 200, 10, seed=1)
    next_id, cut_any = 4000, False
    for _ in range(10):
        ids = np.array(sorted(vectors))
        gone = rng.choice(ids, 60, replace=False)
        changed, deleted = gone[:30], gone[30:]
        for i in deleted:
            del vectors[int(i)]
        for i, v in zip(changed, _vectors(rng, 30), strict=True):
            vectors[int(i)] = v
        added = np.arange(next_id, next_id + 30)
        next_id += 30
        for i, v in zip(added, _vectors(rng, 30), strict=True):
            vectors[int(i)] = v
        table = Table(np.array(list(vectors)), np.stack(list(vectors.values())))
        advanced = advance_probe(probe, table, gone, np.concatenate([changed, added]))
        assert advanced is not None
        probe = advanced
        assert not np.isin(probe.query_ids, gone).any()
        D, I, _ = streaming_topk(table, probe.xq, 50, exclude=probe.query_ids)  # noqa: E741
        length = (probe.gt_ids >= 0).sum(axis=1)
        assert (length >= 10).all()
        cut_any |= bool((length < 50).any())
        for r in range(probe.queries):
            np.testing.assert_array_equal(probe.gt_ids[r, : length[r]], I[r, : length[r]])
            np.testing.assert_allclose(
                probe.gt_scores[r, : length[r]], D[r, : length[r]], atol=1e-5
            )
    assert cut_any  # some lists lost neighbours and were cut where they stop being exact
    probe.save(tmp_path)
    again = load_probe(tmp_path)
    np.testing.assert_array_equal(again.gt_ids, probe.gt_ids)
    assert (again.k, again.sampled, again.binary) == (10, 200, False)


def test_a_probe_that_lost_too_many_queries_asks_to_be_sampled_again():
    rng = np.random.default_rng(2)
    table = Table(np.arange(1000), _vectors(rng, 1000))
    probe = sample_probe(table, 100, 10, seed=1)
    gone = probe.query_ids[: round(100 * (1 - MIN_KEPT)) + 1]  # 79 of 100 left
    keep = np.setdiff1d(np.arange(1000), gone)
    smaller = Table(keep, table._xb[keep])
    assert advance_probe(probe, smaller, gone, np.empty(0, np.int64)) is None


def test_load_probe_is_none_without_a_file(tmp_path):
    assert load_probe(tmp_path) is None
