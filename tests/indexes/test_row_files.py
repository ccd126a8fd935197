"""Hits' rows come from the version's memory-mapped Arrow file (``indexes.storage.row_files``):
every column equal to the Parquet rows (parts whose user columns differ included), derived
once beside the version's files, derived again when stale, kept in the cache when the
folder cannot take it, and readable after the version is deleted. Layered versions:
tests/pipeline/test_update_layers.py."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow as pa
import pytest

from corpusbeam.errors import IndexFolderError
from indexes import BuildConfig
from indexes.reader import open_index
from indexes.storage.row_files import ROWS_DIR, RowFile, derive_rows
from tests.support.indexes import build, clustered

N = 300


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("rows") / "idx"
    rng = np.random.default_rng(3)
    metadata = {
        "document_id": [f"doc-{i // 3}" for i in range(N)],
        "chunk": [i % 3 for i in range(N)],
        "text": [f"text {i} " + "é" * (i % 7) if i % 11 else None for i in range(N)],
        "uri": [f"file:///c/{i // 3}.txt" for i in range(N)],
        "lang": ["en" if i % 2 else "fr" for i in range(N)],
        "year": rng.integers(1990, 2030, N).tolist(),
        "tags": [[f"t{i % 4}", "x"] if i % 5 else [] for i in range(N)],
        "weight": [None if i % 6 == 0 else i / 7 for i in range(N)],
    }
    xb = clustered(N, 32, seed=4)
    build(path, xb, metadata, config=BuildConfig(shards=5, eval_queries=20, lexical=False))
    return path


def _parquet_rows(folder) -> dict[int, dict]:
    return {row["id"]: row for row in folder.metadata().to_pylist()}


def test_rows_by_id_equal_the_parquet_rows(folder):
    opened = open_index(folder)
    want = _parquet_rows(opened)
    ids = np.random.default_rng(0).permutation(np.array(list(want), dtype=np.int64))
    got = opened.lookup(ids)
    assert got == [want[int(i)] for i in ids]  # every column, every type, nulls too
    assert opened.lookup(ids[:0]) == []
    assert len(opened.manifest.parts) == 5
    assert [f.suffix for f in (folder / ROWS_DIR).iterdir()] == [".arrow"]
    assert opened.rows_file() is not None
    with pytest.raises(IndexFolderError, match="is in no part"):  # from the parts' check
        opened.lookup(np.array([int(ids.max()) + 1]))


def test_a_stale_row_file_is_derived_again(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    for f in (copy / ROWS_DIR).iterdir():
        f.write_bytes(f.read_bytes()[:100])  # a damaged (or foreign) file
    opened = open_index(copy)
    want = _parquet_rows(opened)
    ids = np.array(sorted(want), dtype=np.int64)
    assert opened.lookup(ids) == [want[int(i)] for i in ids]
    assert all(f.stat().st_size > 100 for f in (copy / ROWS_DIR).iterdir())


def test_a_folder_that_takes_no_files_keeps_them_in_the_cache(folder, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / ROWS_DIR)
    (copy / ROWS_DIR).write_text("not a folder")  # so nothing can be written there
    monkeypatch.setenv("CORPUSBEAM_CACHE", str(tmp_path / "cache"))
    opened = open_index(copy)
    want = _parquet_rows(opened)
    ids = np.array(sorted(want), dtype=np.int64)[::7]
    assert opened.lookup(ids) == [want[int(i)] for i in ids]
    assert len(list((tmp_path / "cache" / "rows").iterdir())) == 1


def test_rows_stay_readable_after_the_version_is_deleted(folder, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    opened = open_index(copy)
    want = _parquet_rows(opened)
    opened.open_all()  # what Searcher does on opening
    shutil.rmtree(copy)
    ids = np.array(sorted(want), dtype=np.int64)[::5]
    assert opened.lookup(ids) == [want[int(i)] for i in ids]


def test_parts_whose_columns_differ_make_one_file(tmp_path):
    a = pa.table({"id": pa.array([1, 5], pa.int64()), "text": ["a", None], "lang": ["en", "fr"]})
    b = pa.table({"id": pa.array([9], pa.int64()), "text": ["c"], "year": pa.array([2020])})
    target, digest = tmp_path / "rows.arrow", "d" * 64
    derive_rows([a, b], [a.schema, b.schema], target, digest)
    rows = RowFile._read(target, digest, 3)
    assert rows is not None and RowFile._read(target, "e" * 64, 3) is None  # another version's
    want = pa.concat_tables([a, b], promote_options="permissive").to_pylist()
    assert rows.lookup(np.array([9, 1, 5])) == [want[2], want[0], want[1]]


def test_lookups_read_no_part(folder, monkeypatch):
    """Hits' rows come from the one rows file whatever the part count: no part's Parquet
    row group is read (the per-hit cost at 10x the parts: benchmarks/query_scale.py)."""
    opened = open_index(folder)
    opened.open_all()
    ids = opened.parts.ids()[::10]

    def refuse(self, *args):
        raise AssertionError("a part was read")

    monkeypatch.setattr(type(opened.parts), "lookup", refuse)
    monkeypatch.setattr(type(opened.parts), "_group", refuse)
    assert [r["id"] for r in opened.lookup(ids)] == ids.tolist()
