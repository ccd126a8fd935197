"""Index choice per encoding, size and budget; forced factory strings checked per encoding."""

import faiss
import pytest

from corpusbeam.errors import ConfigError
from indexes.ann.choose import AutoLimits, choose_index
from indexes.ann.spec import IndexSpec, make_index

GB = 1 << 30


@pytest.mark.parametrize(
    ("n", "encoding", "budget", "factory"),
    [
        (5_000, "float", GB, "IDMap2,Flat"),
        (50_000, "base64", GB, "IDMap2,HNSW32"),
        (500_000, "float", GB, "IVF2048,Flat"),
        (1_000_000, "float", GB, "IVF4096,SQ8"),
        (1_000_000, "float", 150 << 20, "IVF4096,PQ192x4fs"),
        (50_000_000, "float", 4 * GB, "IVF262144_HNSW32,PQ96x4fs"),
        (1_000_000, "float", 48 << 20, "IVF4096,PQ48x4fs"),
        (50_000, "int8", GB, "IDMap2,SQ8_direct_signed"),
        (1_000_000, "uint8", GB, "IVF4096,SQ8_direct_signed"),
        (1_000_000, "ubinary", GB, "IDMap,BFlat"),
        (3_000_000, "binary", 2 * GB, "IDMap2,BHNSW32"),
        (20_000_000, "ubinary", 2 * GB, "BIVF262144_HNSW32"),
    ],
)
def test_choice_table(n, encoding, budget, factory):
    spec = choose_index(n, 384, encoding, memory_budget=budget)
    assert spec.factory == factory
    assert spec.estimated_bytes <= budget
    if spec.nlist:
        assert 30 * spec.nlist <= spec.train_size <= 256 * spec.nlist
        assert spec.search_param == "nprobe"


def test_training_skipped_where_not_needed():
    for enc in ("float", "int8", "ubinary"):
        spec = choose_index(2000, 64, enc)
        assert spec.train_size == 0
        assert make_index(spec).is_trained


def test_int8_over_budget_is_a_clear_error():
    with pytest.raises(ConfigError, match="memory_budget"):
        choose_index(5_000_000, 1024, "int8", memory_budget=GB)


@pytest.mark.parametrize(
    ("encoding", "factory", "match"),
    [
        ("float", "BFlat", "float index"),
        ("float", "SQ8_direct_signed", "float index"),
        ("ubinary", "IVF64,Flat", "binary index"),
        ("binary", "Flat", "binary index"),
        ("int8", "IVF64,Flat", "exactly"),
        ("int8", "SQ8", "exactly"),
        ("uint8", "SQ8_direct", "rank wrongly"),
        ("float", "IVF64,Nonsense", "FAISS cannot build"),
        ("float", "IVF4096,Flat", "at least"),
    ],
)
def test_forced_factory_that_does_not_suit_is_refused(encoding, factory, match):
    with pytest.raises(ConfigError, match=match) as info:
        choose_index(5000, 64, encoding, factory=factory)
    assert info.value.field == "factory"


@pytest.mark.parametrize(
    ("encoding", "factory", "final", "param"),
    [
        ("float", "HNSW16", "IDMap2,HNSW16", "efSearch"),
        ("float", "IVF32,PQ8", "IVF32,PQ8", "nprobe"),
        ("int8", "SQ8_direct_signed", "IDMap2,SQ8_direct_signed", None),
        ("uint8", "IVF16,SQ8_direct_signed", "IVF16,SQ8_direct_signed", "nprobe"),
        ("ubinary", "BFlat", "IDMap,BFlat", None),
        ("binary", "BIVF16", "BIVF16", "nprobe"),
    ],
)
def test_forced_factory_gets_explicit_ids(encoding, factory, final, param):
    spec = choose_index(5000, 64, encoding, factory=factory)
    assert spec.factory == final
    assert spec.search_param == param


def test_int8_ivf_stores_bytes_not_residuals():
    spec = choose_index(5000, 64, "int8", factory="IVF16,SQ8_direct_signed")
    assert faiss.extract_index_ivf(make_index(spec)).by_residual is False


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n": 0, "d": 8, "encoding": "float"}, "n"),
        ({"n": 10, "d": 0, "encoding": "float"}, "dimensions"),
        ({"n": 10, "d": 12, "encoding": "ubinary"}, "dimensions"),
        ({"n": 10, "d": 8, "encoding": "float16"}, "encoding_format"),
        ({"n": 10, "d": 8, "encoding": "float", "memory_budget": 0}, "memory_budget"),
        ({"n": 10, "d": 8, "encoding": "float", "train_per_centroid": 10}, "train_per_centroid"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ConfigError) as info:
        choose_index(**kwargs)
    assert info.value.field == field


def test_spec_validates():
    with pytest.raises(ConfigError, match="search_param"):
        IndexSpec(encoding="float", dimensions=8, count=1, factory="Flat", search_param="x")


@pytest.mark.parametrize(
    ("encoding", "limits", "budget", "factory"),
    [
        ("float", AutoLimits(), 1 << 30, "IDMap2,Flat"),
        ("float", AutoLimits(flat=0), 1 << 30, "IDMap2,HNSW32"),
        ("float", AutoLimits(flat=0, graph=0), 1 << 30, "IVF32,Flat"),
        ("float", AutoLimits(flat=0, graph=0), 150_000, "IVF32,SQ8"),
        ("float", AutoLimits(flat=0, graph=0), 50_000, "IVF32,PQ32x4fs"),
        ("int8", AutoLimits(flat=0), 1 << 30, "IVF32,SQ8_direct_signed"),
        ("binary", AutoLimits(flat=1_000), 1 << 30, "IDMap,BFlat"),
        ("binary", AutoLimits(flat=999), 1 << 30, "IDMap2,BHNSW32"),
        ("binary", AutoLimits(flat=0, graph=0), 1 << 30, "BIVF32"),
    ],
)
def test_lowered_limits_give_a_small_corpus_what_a_large_one_gets(
    encoding, limits, budget, factory
):
    spec = choose_index(1_000, 64, encoding, memory_budget=budget, limits=limits)
    assert spec.factory == factory


def test_a_negative_limit_is_refused_by_name():
    with pytest.raises(ConfigError, match="graph_max"):
        AutoLimits(graph=-1)
