"""Rescoring binary and int8 candidates with the float query; tuning records recall."""

import numpy as np
import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.search import RescoreStore, index_id_view, search
from indexes.ann.train import add_vectors, train_index
from indexes.building.evaluate import traded
from indexes.building.tune import exact_search, recall_at_k, tune_index
from indexes.config import BuildConfig


def _binary(xb):
    d = xb.shape[1]
    bits = codec.quantize(xb, "ubinary")
    ids = np.arange(len(xb), dtype=np.int64) * 5 + 2
    spec = choose_index(len(xb), d, "ubinary")
    index = train_index(spec, bits)
    add_vectors(index, bits, ids, spec)
    return index, ids


def test_int8_rescoring_lifts_binary_recall(xb, xq):
    d = xb.shape[1]
    index, ids = _binary(xb)
    _, I_gt = exact_search(xb, ids, xq, 10, family="float")
    plain = search(index, xq, 10, encoding="ubinary", d=d)
    store = RescoreStore(index_id_view(index), codec.quantize(xb, "int8"), dimensions=d)
    rescored = search(index, xq, 10, encoding="ubinary", d=d, rescore=store, rescore_factor=20)
    r0, r1 = recall_at_k(plain.I, I_gt, 10), recall_at_k(rescored.I, I_gt, 10)
    assert rescored.rescored and rescored.candidates == 200
    assert r1 >= 0.95 and r1 > r0 + 0.1, (r0, r1)
    assert (np.diff(rescored.D, axis=1) <= 1e-6).all()  # best first


def test_float_rescoring_of_int8_candidates(xb, xq):
    d = xb.shape[1]
    x8 = codec.quantize(xb, "int8")
    ids = np.arange(len(xb), dtype=np.int64)
    spec = choose_index(len(xb), d, "int8")
    index = train_index(spec, x8)
    add_vectors(index, x8, ids, spec)
    _, I_gt = exact_search(xb, ids, xq, 10, family="float")
    store = RescoreStore(ids, xb, dimensions=d)
    res = search(index, xq, 10, encoding="int8", d=d, rescore=store, rescore_factor=4)
    np.testing.assert_array_equal(np.sort(res.I, axis=1), np.sort(I_gt, axis=1))


def test_index_id_view_is_zero_copy_and_sorted(xb):
    index, ids = _binary(xb)
    view = index_id_view(index)
    assert np.array_equal(view, ids) and not view.flags.owndata


def test_rescore_errors(xb):
    index, ids = _binary(xb)
    d = xb.shape[1]
    store = RescoreStore(ids, codec.quantize(xb, "int8"), dimensions=d)
    bits = codec.quantize(xb[:2], "ubinary")
    with pytest.raises(ConfigError, match="float queries"):
        search(index, bits, 5, encoding="ubinary", d=d, rescore=store)
    with pytest.raises(ConfigError, match="sorted"):
        RescoreStore(ids[::-1].copy(), codec.quantize(xb, "int8"), dimensions=d)
    with pytest.raises(ConfigError, match="k"):
        search(index, xb[:2], 0, encoding="ubinary", d=d)
    with pytest.raises(ConfigError, match="xq"):
        search(index, xb[:2, :8], 5, encoding="ubinary", d=d)


def test_tuning_picks_a_value_and_records_recall(xb, xq):
    d = xb.shape[1]
    ids = np.arange(len(xb), dtype=np.int64)
    spec = choose_index(len(xb), d, "float", factory="IVF32,Flat")
    index = train_index(spec, xb)
    add_vectors(index, xb, ids, spec)
    _, I_gt = exact_search(xb, ids, xq, 10, family="float")
    tuned = tune_index(index, spec, xq, I_gt, k=10, latency_budget_ms=1000, target_recall=0.99)
    assert set(tuned.params) == {"nprobe"} and tuned.trials
    assert tuned.recall >= 0.99 or tuned.params["nprobe"] == 32
    assert [t["params"]["nprobe"] for t in tuned.trials] == sorted(
        t["params"]["nprobe"] for t in tuned.trials
    )
    # The least value that reaches the target: the doubling steps' gap halved until it is
    # within an eighth of the value below (here 2 fails, 4 reaches, 3 is tried and chosen).
    chosen = tuned.params["nprobe"]
    below = [t["params"]["nprobe"] for t in tuned.trials if t["params"]["nprobe"] < chosen]
    assert tuned.recall >= 0.99 and below and chosen & (chosen - 1)  # not a power of two
    assert chosen - max(below) <= max(1, max(below) // 8)
    assert all(t["recall"] < 0.99 for t in tuned.trials if t["params"]["nprobe"] < chosen)
    # The manifest says what was traded: the chosen value beside the tried ones around it.
    summary = traded(tuned, BuildConfig(latency_budget_ms=1000))
    assert summary["chosen"] == tuned.params and summary["target_recall"] == 0.99
    assert summary["cheaper"]["params"]["nprobe"] == max(below)
    assert summary["cheaper"]["recall"] < 0.99 <= summary["recall"]
    # A budget nothing meets keeps the cheapest value.
    fast = tune_index(index, spec, xq, I_gt, latency_budget_ms=1e-9)
    assert fast.params == {"nprobe": 1}
    with pytest.raises(ConfigError, match="latency_budget_ms"):
        tune_index(index, spec, xq, I_gt, latency_budget_ms=0)


def test_drop_ids_leaves_each_query_out_of_its_own_results():
    from indexes.building.tune import drop_ids

    I = np.array([[5, 1, 2], [3, 4, 9], [7, 8, -1]])  # noqa: E741
    out = drop_ids(I, np.array([5, 9, 0]), 2)
    assert out.tolist() == [[1, 2], [3, 4], [7, 8]]
    assert drop_ids(I, None, 2).tolist() == [[5, 1], [3, 4], [7, 8]]
