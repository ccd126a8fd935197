"""The id-range parts: each id in the part its range names, hits looked up by id reading
one row group, ground truth streamed part by part equal to one exact search."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference import codec
from indexes import BuildConfig, open_index
from indexes.building.recall import REFERENCE_BATCH_ROWS, streaming_reference
from indexes.building.tune import reference_neighbours
from indexes.storage.part_files import ROW_GROUP_ROWS
from indexes.storage.part_ranges import id_starts, part_of
from tests.support.indexes import build


@pytest.fixture(scope="module")
def parted(tmp_path_factory, xb, metadata):
    path = tmp_path_factory.mktemp("parted") / "idx"
    build(path, xb, metadata, config=BuildConfig(shards=2, eval_queries=20))
    return open_index(path)


def test_parts_cover_their_id_ranges(parted, xb):
    parts = parted.manifest.parts
    assert [p["name"] for p in parts] == ["parts/part-00000", "parts/part-00001"]
    assert sum(p["rows"] for p in parts) == len(xb)
    starts = id_starts(2)
    for number, p in enumerate(parts):
        assert part_of(p["id_min"], 2) == part_of(p["id_max"], 2) == number
        assert starts[number] <= p["id_min"] <= p["id_max"]
    # Each part spans more than one row group, so a lookup reads one of several.
    assert min(p["rows"] for p in parts) > ROW_GROUP_ROWS


def test_lookup_reads_rows_by_id_in_the_order_asked(parted):
    table = parted.metadata()
    ids = table.column("id").to_numpy()
    rng = np.random.default_rng(3)
    ask = rng.choice(ids, size=50, replace=False)
    rows = parted.lookup(ask)
    assert [r["id"] for r in rows] == ask.tolist()
    by_id = {r["id"]: r for r in table.to_pylist()}
    assert rows == [by_id[i] for i in ask.tolist()]
    missing = int(ids.max()) + 1 if int(ids.max()) + 1 not in set(ids.tolist()) else 1
    with pytest.raises(IndexFolderError, match="is in no part"):
        parted.lookup(np.array([missing]))


def test_lookups_from_many_threads_read_the_right_rows(parted):
    # The service looks hits up from several threads at once: the shared Parquet readers
    # and row-group cache must not mix their reads up (pyarrow raised "ReadRangeCache did
    # not find matching cache entry" before they were locked).
    fresh = open_index(parted.path)
    table = parted.metadata()
    by_id = {r["id"]: r for r in table.to_pylist()}
    ids = table.column("id").to_numpy()

    def work(seed: int) -> None:
        rng = np.random.default_rng(seed)
        for _ in range(60):
            ask = rng.choice(ids, size=7, replace=False)
            assert fresh.lookup(ask) == [by_id[i] for i in ask.tolist()]

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(work, range(8)))


@pytest.mark.parametrize("batch_rows", [REFERENCE_BATCH_ROWS, 7])
def test_streamed_ground_truth_equals_one_exact_search(parted, xq, batch_rows):
    ids, xb, _ = parted.vectors()
    want, ref = reference_neighbours(xb, ids, xq, 10, encoding="float", d=xb.shape[1])
    got, ref2 = streaming_reference(parted.parts, xq, 10, batch_rows=batch_rows)
    np.testing.assert_array_equal(got, want)
    assert ref == ref2
    exclude = ids[: len(xq)]
    want, _ = reference_neighbours(
        xb, ids, xq, 10, encoding="float", d=xb.shape[1], exclude=exclude
    )
    np.testing.assert_array_equal(
        streaming_reference(parted.parts, xq, 10, exclude=exclude, batch_rows=batch_rows)[0],
        want,
    )


def test_vectors_stream_in_pieces_of_at_most_batch_rows(parted):
    ids, xb, _ = parted.vectors()
    pieces = list(parted.parts.iter_vectors(batch_rows=7))
    assert max(len(p[0]) for p in pieces) == 7 and len(pieces) > len(parted.parts.infos)
    np.testing.assert_array_equal(np.concatenate([p[0] for p in pieces]), ids)
    np.testing.assert_array_equal(np.concatenate([p[1] for p in pieces]), xb)
    with pytest.raises(ConfigError, match="batch_rows"):
        next(parted.parts.iter_vectors(batch_rows=0))


def test_binary_parts_stream_hamming_ground_truth(tmp_path, xb, xq, metadata):
    build(tmp_path / "b", xb, metadata, "ubinary", config=BuildConfig(shards=3, eval_queries=20))
    folder = open_index(tmp_path / "b")
    ids, xbits, _ = folder.vectors()
    q = codec.quantize(xq, "ubinary")
    want, _ = reference_neighbours(xbits, ids, q, 5, encoding="ubinary", d=xb.shape[1])
    got, ref = streaming_reference(folder.parts, q, 5)
    assert ref == "exact Hamming distance"
    np.testing.assert_array_equal(got, want)


def test_vector_columns_are_written_without_a_dictionary(parted):
    """A dictionary over near-unique vectors is built, found too large and thrown away:
    only the scalar columns get one (``indexes.storage.part_files.parquet_bytes``)."""
    import pyarrow.parquet as pq

    name = parted.manifest.parts[0]["name"]
    vectors = pq.ParquetFile(parted.path / f"{name}.vectors.parquet").metadata
    names = [vectors.schema.column(i).path for i in range(vectors.num_columns)]
    encodings = {n: vectors.row_group(0).column(i).encodings for i, n in enumerate(names)}
    assert all("DICTIONARY" not in e for n, enc in encodings.items() if "vector" in n for e in enc)
    assert any("DICTIONARY" in e for e in encodings["id"])
    metadata = pq.ParquetFile(parted.path / f"{name}.metadata.parquet").metadata
    text = [i for i in range(metadata.num_columns) if metadata.schema.column(i).path == "text"]
    assert any("DICTIONARY" in e for e in metadata.row_group(0).column(text[0]).encodings)
