"""Every index type and encoding against exact IndexFlat / IndexBinaryFlat on seeded data;
shards merged (in memory, on disk, or grouped) equal one build."""

import itertools

import faiss
import numpy as np
import pytest

from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.merge import merge_indexes, merge_ondisk, shard_group
from indexes.ann.search import search
from indexes.ann.serialize import deserialize_index, read_index, serialize_index, write_index
from indexes.ann.train import (
    add_vectors,
    prepare_queries,
    prepare_vectors,
    train_index,
    training_sample,
)
from indexes.building.tune import exact_search, recall_at_k

IDS_STEP = 7  # ids are never row numbers in these tests


def _ids(n):
    return np.arange(n, dtype=np.int64) * IDS_STEP + 5


def _build(x, encoding, factory, d, *, seed=0):
    spec = choose_index(x.shape[0], d, encoding, factory=factory)
    index = train_index(spec, x, seed=seed)
    add_vectors(index, x, _ids(x.shape[0]), spec)
    return spec, index


def _tie_aware_recall(D, D_gt, k, *, lower_is_better):
    """Share of results at least as close as the true k-th neighbour (ties count)."""
    kth = D_gt[:, k - 1 : k]
    ok = D[:, :k] <= kth if lower_is_better else D[:, :k] >= kth - 1e-4
    return float(ok.mean())


CASES = [
    # encoding, factory, search params, minimum recall@10 against exact search
    ("float", "Flat", {}, 1.0),
    ("float", "HNSW16", {"efSearch": 64}, 0.95),
    ("float", "IVF32,Flat", {"nprobe": 8}, 0.95),
    ("float", "IVF32,SQ8", {"nprobe": 8}, 0.9),
    ("float", "OPQ8_32,IVF32,PQ8x4", {"nprobe": 8}, 0.3),
    ("base64", "IVF32_HNSW16,Flat", {"nprobe": 8}, 0.95),
    ("int8", "SQ8_direct_signed", {}, 1.0),
    ("int8", "IVF32,SQ8_direct_signed", {"nprobe": 8}, 0.95),
    ("uint8", "SQ8_direct_signed", {}, 1.0),
    ("uint8", "HNSW16_SQ8_direct_signed", {"efSearch": 64}, 0.95),
    ("ubinary", "BFlat", {}, 1.0),
    ("ubinary", "BHNSW16", {"efSearch": 64}, 0.9),
    ("binary", "BIVF32", {"nprobe": 8}, 0.9),
]


@pytest.mark.parametrize(("encoding", "factory", "params", "floor"), CASES)
def test_index_against_exact_search(xb, xq, encoding, factory, params, floor):
    d = xb.shape[1]
    x = codec.quantize(xb, encoding)
    spec, index = _build(x, encoding, factory, d)
    assert index.ntotal == x.shape[0]
    res = search(index, xq, 10, encoding=encoding, d=d, params=params)
    family = spec.family
    D_gt, I_gt = exact_search(
        prepare_vectors(x, encoding, d),
        _ids(x.shape[0]),
        prepare_queries(xq, encoding, d),
        10,
        family=family,
    )
    assert set(res.I.ravel()) <= set(_ids(x.shape[0]))  # explicit ids came back
    lower = family == "binary"
    recall = _tie_aware_recall(res.D, D_gt, 10, lower_is_better=lower)
    assert recall >= floor, (factory, recall)
    if floor == 1.0:
        np.testing.assert_allclose(res.D, D_gt, rtol=1e-5, atol=1e-4)
    else:
        assert recall_at_k(res.I, I_gt, 10) >= floor - 0.1


def test_int8_index_equals_exact_int8_inner_product(xb, xq):
    d = xb.shape[1]
    x = codec.quantize(xb, "int8")
    _, index = _build(x, "int8", "SQ8_direct_signed", d)
    q8 = codec.quantize(xq, "int8")
    res = search(index, q8, 5, encoding="int8", d=d)
    exact = q8.astype(np.int64) @ x.astype(np.int64).T
    np.testing.assert_array_equal(res.D, -np.sort(-exact, axis=1)[:, :5])


def test_uint8_as_sq8_direct_would_rank_wrongly(xb, xq):
    """Why uint8 is stored as its int8 twin: inner products on 0..255 values are biased."""
    d = xb.shape[1]
    u8 = codec.quantize(xb, "uint8")
    direct = faiss.index_factory(d, "SQ8_direct", faiss.METRIC_INNER_PRODUCT)
    direct.add(u8.astype(np.float32))
    _, I_direct = direct.search(codec.quantize(xq, "uint8").astype(np.float32), 10)
    _, index = _build(u8, "uint8", "SQ8_direct_signed", d)
    ours = search(index, codec.quantize(xq, "uint8"), 10, encoding="uint8", d=d)
    _, I_gt = exact_search(
        codec.quantize(xb, "int8").astype(np.float32),
        _ids(len(xb)),
        codec.quantize(xq, "int8").astype(np.float32),
        10,
        family="int8",
    )
    assert recall_at_k(ours.I, I_gt, 10) >= 0.99
    assert recall_at_k(_ids(len(xb))[I_direct], I_gt, 10) < 0.9


def test_training_sample_is_random_and_seeded():
    a = training_sample(10_000, 500, seed=3)
    assert np.array_equal(a, training_sample(10_000, 500, seed=3))
    assert not np.array_equal(a, np.arange(500))
    assert a.max() > 5000  # drawn from the whole range, not the first rows
    assert np.array_equal(training_sample(100, 500), np.arange(100))


def test_ivf_training_is_seeded(xb):
    spec = choose_index(len(xb), xb.shape[1], "float", factory="IVF32,Flat")
    a = train_index(spec, xb, seed=1)
    b = train_index(spec, xb, seed=1)
    qa = faiss.extract_index_ivf(a).quantizer
    qb = faiss.extract_index_ivf(b).quantizer
    assert np.array_equal(qa.reconstruct_n(0, qa.ntotal), qb.reconstruct_n(0, qb.ntotal))


MERGE_CASES = [
    ("float", "IVF32,Flat", {"nprobe": 4}),
    ("float", "Flat", {}),
    ("int8", "IVF32,SQ8_direct_signed", {"nprobe": 4}),
    ("uint8", "SQ8_direct_signed", {}),
    ("ubinary", "BIVF32", {"nprobe": 4}),
    ("binary", "BFlat", {}),
]


@pytest.mark.parametrize(("encoding", "factory", "params"), MERGE_CASES)
def test_four_shards_merged_equal_one_build(xb, xq, encoding, factory, params):
    d = xb.shape[1]
    x = codec.quantize(xb, encoding)
    ids = _ids(len(x))
    spec, one = _build(x, encoding, factory, d)
    blob = serialize_index(train_index(spec, x, seed=0))
    bounds = np.linspace(0, len(x), 5).astype(int)
    shards = []
    for lo, hi in itertools.pairwise(bounds):
        shard = deserialize_index(blob, encoding)
        add_vectors(shard, x[lo:hi], ids[lo:hi], spec)
        shards.append(shard)
    merged = merge_indexes(shards, spec)
    a = search(one, xq, 10, encoding=encoding, d=d, params=params)
    b = search(merged, xq, 10, encoding=encoding, d=d, params=params)
    np.testing.assert_array_equal(a.I, b.I)
    np.testing.assert_array_equal(a.D, b.D)


def test_ondisk_merge_and_shard_group_equal_one_build(xb, xq, tmp_path):
    d = xb.shape[1]
    ids = _ids(len(xb))
    spec, one = _build(xb, "float", "IVF32,Flat", d)
    trained = train_index(spec, xb, seed=0)
    blob = serialize_index(trained)
    paths, shards = [], []
    for s, rows in enumerate(np.array_split(np.arange(len(xb)), 4)):
        shard = deserialize_index(blob, "float")
        add_vectors(shard, xb[rows], ids[rows], spec)
        paths.append(tmp_path / f"shard-{s}.faiss")
        write_index(shard, paths[-1])
        shards.append(shard)
    empty = deserialize_index(blob, "float")
    merge_ondisk(empty, paths, tmp_path / "index.faiss", spec)
    ondisk = read_index(tmp_path / "index.faiss", "float")
    group = shard_group(shards, spec)
    a = search(one, xq, 10, encoding="float", d=d, params={"nprobe": 8})
    for other in (ondisk, group):
        b = search(other, xq, 10, encoding="float", d=d, params={"nprobe": 8})
        np.testing.assert_array_equal(a.I, b.I)
        np.testing.assert_allclose(a.D, b.D, rtol=1e-6)


def test_serialise_round_trip_and_bad_bytes(xb):
    from corpusbeam.errors import IndexFolderError

    _, index = _build(codec.quantize(xb, "ubinary"), "ubinary", "BFlat", xb.shape[1])
    again = deserialize_index(serialize_index(index), "ubinary")
    assert again.ntotal == index.ntotal
    with pytest.raises(IndexFolderError):
        deserialize_index(b"not an index", "float")


def test_add_checks_shapes_and_dtypes(xb):
    from corpusbeam.errors import ConfigError

    spec, index = _build(xb, "float", "Flat", xb.shape[1])
    with pytest.raises(ConfigError, match="xb"):
        add_vectors(index, xb[:, :5], _ids(len(xb)), spec)
    with pytest.raises(ConfigError, match="ids"):
        add_vectors(index, xb, _ids(len(xb) - 1), spec)
    spec8 = choose_index(100, xb.shape[1], "int8")
    with pytest.raises(ConfigError, match="dtype"):
        add_vectors(train_index(spec8, xb[:100]), xb[:100], _ids(100), spec8)
