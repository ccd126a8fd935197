"""Metadata filters: the syntax, and filtering inside the search for every index type
(oversampling, reported as such, where FAISS refuses a selector)."""

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.choose import choose_index
from indexes.ann.search import search
from indexes.ann.train import add_vectors, prepare_queries, prepare_vectors, train_index
from indexes.building.tune import exact_search
from indexes.filters import filter_ids, filter_mask

TABLE = pa.table(
    {
        "id": pa.array([10, 20, 30, 40, 50], pa.int64()),
        "lang": ["en", "fr", "en", None, "de"],
        "year": [2001, 2005, 2010, 2015, 2020],
    }
)


@pytest.mark.parametrize(
    ("expr", "ids"),
    [
        ({"lang": "en"}, [10, 30]),
        ({"lang": "en", "year": {"$gt": 2005}}, [30]),
        ({"lang": {"$in": ["fr", "de"]}}, [20, 50]),
        ({"lang": {"$nin": ["en"]}}, [20, 40, 50]),
        ({"lang": {"$ne": "en"}}, [20, 40, 50]),
        ({"year": {"$gte": 2010, "$lt": 2020}}, [30, 40]),
        ({"$or": [{"lang": "de"}, {"year": {"$lte": 2001}}]}, [10, 50]),
        ({"$and": [{"lang": "en"}, {"$not": {"year": 2001}}]}, [30]),
        ({"lang": "xx"}, []),
    ],
)
def test_filter_syntax(expr, ids):
    assert filter_ids(TABLE, expr).tolist() == ids


@pytest.mark.parametrize(
    ("expr", "match"),
    [
        ({}, "non-empty"),
        ({"colour": "red"}, "no such metadata column"),
        ({"lang": {"$regex": "e"}}, "unknown operator"),
        ({"$xor": []}, "unknown operator"),
        ({"$and": {}}, "non-empty list"),
        ({"lang": {"$in": "en"}}, "takes a list"),
        ({"year": {"$gt": "soon"}}, "filter"),
    ],
)
def test_filter_errors(expr, match):
    with pytest.raises(ConfigError, match=match):
        filter_mask(TABLE, expr)


CASES = [
    ("float", "Flat", {}, "selector", True),
    ("float", "HNSW16", {"efSearch": 128}, "selector", False),
    ("float", "IVF16,Flat", {"nprobe": 16}, "selector", True),
    ("int8", "SQ8_direct_signed", {}, "selector", True),
    ("uint8", "IVF16,SQ8_direct_signed", {"nprobe": 16}, "selector", True),
    ("ubinary", "BFlat", {}, "selector", True),
    ("binary", "BHNSW16", {"efSearch": 128}, "oversample", False),
    ("ubinary", "BIVF16", {"nprobe": 16}, "oversample", True),
]


@pytest.mark.parametrize(("encoding", "factory", "params", "mode", "exact"), CASES)
def test_filtered_search_equals_exact_search_on_the_subset(
    xb, xq, encoding, factory, params, mode, exact
):
    d = xb.shape[1]
    x = codec.quantize(xb, encoding)
    ids = np.arange(len(x), dtype=np.int64) * 3 + 1
    spec = choose_index(len(x), d, encoding, factory=factory)
    index = train_index(spec, x, seed=0)
    add_vectors(index, x, ids, spec)
    allowed_rows = np.flatnonzero(np.arange(len(x)) % 7 == 2)  # a sparse subset: 1 in 7
    allowed = ids[allowed_rows]
    res = search(index, xq, 10, encoding=encoding, d=d, params=params, allowed_ids=allowed)
    assert res.filter_mode == mode
    assert np.isin(res.I, allowed).all()  # nothing outside the filter, and k results each
    D_gt, _ = exact_search(
        prepare_vectors(x[allowed_rows], encoding, d),
        allowed,
        prepare_queries(xq, encoding, d),
        10,
        family=spec.family,
    )
    if exact:  # same distances as exact search restricted to the subset
        np.testing.assert_allclose(res.D, D_gt, rtol=1e-5, atol=1e-4)
    else:
        kth = D_gt[:, 9:10]
        ok = kth >= res.D if spec.family == "binary" else kth - 1e-4 <= res.D
        assert ok.mean() >= 0.9


def test_empty_filter_gives_no_results(xb):
    spec = choose_index(len(xb), xb.shape[1], "float")
    index = train_index(spec, xb)
    add_vectors(index, xb, np.arange(len(xb)), spec)
    res = search(index, xb[:2], 5, encoding="float", d=xb.shape[1], allowed_ids=[])
    assert (res.I == -1).all()


def test_folder_filter_uses_metadata(tmp_path, xb, xq, metadata):
    from indexes import BuildConfig, build_folder, open_index
    from tests.support.indexes import metadata_rows

    build_folder(
        tmp_path / "f",
        xb,
        metadata,
        encoding="float",
        model="m",
        config=BuildConfig(factory="IVF16,Flat", eval_queries=0),
    )
    folder = open_index(tmp_path / "f")
    res = folder.search(
        xq, 10, filter={"lang": "fr", "year": {"$gte": 2010}}, params={"nprobe": 16}
    )
    assert res.filter_mode == "selector"
    for hits in metadata_rows(folder, res.I):
        for row in hits:
            assert row["lang"] == "fr" and row["year"] >= 2010


@settings(max_examples=60, deadline=None)
@given(
    years=st.lists(st.integers(1990, 2030), min_size=1, max_size=40),
    langs=st.lists(st.sampled_from(["en", "fr", "de", None]), min_size=40, max_size=40),
    pick=st.lists(st.sampled_from(["en", "fr", "de"]), max_size=3),
    lo=st.integers(1990, 2030),
)
def test_filters_agree_with_plain_python(years, langs, pick, lo):
    n = len(years)
    table = pa.table({"id": pa.array(range(n), pa.int64()), "year": years, "lang": langs[:n]})
    expr = {"$or": [{"lang": {"$in": pick}}, {"year": {"$gte": lo}}]}
    want = [i for i in range(n) if (langs[i] is not None and langs[i] in pick) or years[i] >= lo]
    assert filter_ids(table, expr).tolist() == want
