"""A compressed float index keeps float recall: its 4-bit PQ codes only find candidates,
which are rescored against the full vectors memory-mapped from ``rescore.npy``. The memory
budget bounds what stays resident; the vectors on disk are read a row at a time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.errors import ConfigError
from indexes import BuildConfig, choose_index, open_index
from indexes.building.tune import exact_search, recall_at_k
from tests.support.indexes import build, clustered

N, D = 20_000, 128
BUDGET = 1 << 20  # SQ8 would need 2.7 MB: the PQ tier is forced
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data():
    return clustered(N, D, seed=5), clustered(300, D, seed=6)


@pytest.fixture(scope="module")
def folder(tmp_path_factory, data):
    xb, _ = data
    meta = {"document_id": [f"d{i}" for i in range(N)], "chunk": [0] * N}
    path = tmp_path_factory.mktemp("pq") / "index"
    build(path, xb, meta, config=BuildConfig(memory_budget=BUDGET))
    return path


def test_the_budget_forces_a_rescored_pq_tier():
    spec = choose_index(N, D, "float", memory_budget=BUDGET)
    assert spec.factory.endswith("x4fs") and ",PQ" in spec.factory
    assert spec.rescore and spec.estimated_bytes <= BUDGET


def test_rescored_pq_reaches_float_recall(folder, data):
    _, xq = data
    f = open_index(folder)
    m = f.manifest
    assert m.rescore["from"] == "vector" and m.rescore["dtype"] == "float32"
    assert m.rescore["factor"] in (2, 4, 8, 16, 32) and "rescore_factor" not in m.search_params
    assert m.recall["rescored"] and m.recall["value"] >= 0.95
    ids, xs, _ = f.vectors()  # sorted by id, as the folder stores them
    _, I_gt = exact_search(xs, ids, xq, 10, family="float")
    res = f.search(xq, 10)
    assert res.rescored
    assert recall_at_k(res.I, I_gt, 10) >= 0.95
    # The codes alone, ranked without rescoring, are far from float recall.
    assert recall_at_k(f.search(xq, 10, rescore=False).I, I_gt, 10) < 0.9


_RSS = """
import json, sys, numpy as np
from indexes.reader import open_index

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096

path, warm, xq = sys.argv[1], sys.argv[2], np.load(sys.argv[3])
# Pay the libraries' one-time costs (OpenMP and BLAS threads, Arrow's pool, first-call
# allocations) on a small folder of the same kind: they are not this index's memory.
w = open_index(warm)
for i in range(20):
    w.search(xq[i][None], 10)
before = rss()
f = open_index(path)
store = f.rescore_store()
rows = set()
for i in range(1000):
    res = f.search(xq[i % len(xq)][None], 10)
    rows.update(store.rows(res.I).ravel().tolist())
grown = rss() - before
row_bytes = store.vectors.shape[1] * store.vectors.dtype.itemsize
print(json.dumps({"grown": grown, "rows": sorted(rows), "row_bytes": row_bytes}))
"""


def test_resident_memory_stays_within_the_budget_plus_touched_pages(folder, data, tmp_path):
    xb, xq = data
    warm = tmp_path / "warm"
    meta = {"document_id": [f"w{i}" for i in range(3000)], "chunk": [0] * 3000}
    build(warm, xb[:3000], meta, config=BuildConfig(memory_budget=1 << 17, eval_queries=0))
    assert open_index(warm).manifest.index_factory.endswith("x4fs")
    np.save(tmp_path / "xq.npy", xq)
    out = subprocess.run(
        [sys.executable, "-c", _RSS, str(folder), str(warm), str(tmp_path / "xq.npy")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    got = json.loads(out.stdout)
    # Bytes of the rows the queries read (each part's rescore.npy, by row).
    touched = len(got["rows"]) * got["row_bytes"]
    allowance = 2 << 20  # transient buffers of reading the folder's files
    assert got["grown"] <= BUDGET + touched + allowance, (got["grown"], touched)
    # Stronger: the rows are read, not mapped, so not even the touched pages stay resident.
    assert got["grown"] <= BUDGET + allowance, (got["grown"], touched)
    assert touched > BUDGET  # ... though the queries read more than the budget's worth


def test_row_file_reads_exactly_the_rows_asked_for(tmp_path):
    from indexes.storage.npy_rows import RowFile

    x = np.arange(60, dtype=np.float32).reshape(12, 5)
    np.save(tmp_path / "x.npy", x)
    rows = RowFile(tmp_path / "x.npy")
    assert rows.shape == (12, 5) and rows.dtype == np.float32
    want = np.array([0, 1, 2, 7, 9, 10, 11])  # runs and singles
    assert np.array_equal(rows[want], x[want])
    assert rows[np.array([], dtype=np.int64)].shape == (0, 5)
    with pytest.raises(IndexError):
        rows[np.array([12])]


@pytest.mark.parametrize("merge", ["memory", "none"])
def test_sharded_builds_keep_their_rescoring_vectors(tmp_path, data, merge):
    """Shards merged in memory or kept apart: the folder carries its full vectors and
    searches with float recall."""
    xb, xq = data
    n = 8000
    meta = {"document_id": [f"d{i}" for i in range(n)], "chunk": [0] * n}
    config = BuildConfig(memory_budget=1 << 19, shards=3, merge=merge, eval_queries=50)
    build(tmp_path / "f", xb[:n], meta, config=config)
    f = open_index(tmp_path / "f")
    assert f.manifest.rescore["from"] == "vector"
    assert f.manifest.layout == ("single" if merge == "memory" else "shards")
    ids, xs, _ = f.vectors()
    _, I_gt = exact_search(xs, ids, xq, 10, family="float")
    assert recall_at_k(f.search(xq, 10).I, I_gt, 10) >= 0.95


def test_fast_scan_lists_cannot_merge_on_disk(tmp_path, data):
    xb, _ = data
    meta = {"document_id": [f"d{i}" for i in range(8000)], "chunk": [0] * 8000}
    config = BuildConfig(memory_budget=1 << 19, shards=2, merge="ondisk")
    with pytest.raises(ConfigError, match="fast-scan"):
        build(tmp_path / "f", xb[:8000], meta, config=config)
