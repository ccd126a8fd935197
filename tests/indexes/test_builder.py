"""build_folder: the layout, the manifest, ids and metadata row for row, shards that equal
one build, rescoring vectors kept, argument errors."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes import BuildConfig, open_index
from indexes.storage.ids import chunk_id
from indexes.storage.manifest import Manifest
from tests.support.indexes import build, metadata_rows


def test_layout_and_manifest(float_folder, xb):
    names = sorted(p.relative_to(float_folder).as_posix() for p in float_folder.rglob("*"))
    segment = ["blockmax", "blockptr", "ids", "indptr", "lengths", "rows", "terms", "tf"]
    lexical = ["lexical", "lexical/seg-00000", *(f"lexical/seg-00000/{f}.npy" for f in segment)]
    assert names == [
        "index.faiss",
        *lexical,
        "manifest.json",
        "parts",
        "parts/part-00000.metadata.parquet",
        "parts/part-00000.vectors.parquet",
    ]
    m = Manifest.from_json((float_folder / "manifest.json").read_text())
    assert m.parts == [
        {
            "name": "parts/part-00000",
            "rows": len(xb),
            "id_min": m.parts[0]["id_min"],
            "id_max": m.parts[0]["id_max"],
        }
    ]
    assert (m.encoding, m.dimensions, m.count) == ("float", xb.shape[1], len(xb))
    assert m.index_factory == "IVF16,Flat" and m.metric == "inner_product" and m.normalized
    assert m.endpoint == "https://models.example.com/embeddings"
    assert "SECRET" not in (float_folder / "manifest.json").read_text()
    assert m.api_version == "2024-05-01-preview" and m.input_type == "document"
    assert set(m.search_params) == {"nprobe"}
    assert m.recall["k"] == 10 and m.recall["value"] >= 0.9 and m.recall["queries"] == 50
    assert m.latency_ms > 0
    assert set(m.files) == set(names) - {"manifest.json", "parts", "lexical", "lexical/seg-00000"}
    assert m.lexical["dir"] == "lexical" and m.lexical["count"] == len(xb)
    assert all(len(f["sha256"]) == 64 for f in m.files.values())


def test_ids_and_metadata_agree_row_for_row(float_folder, xb, metadata):
    folder = open_index(float_folder)
    meta = folder.metadata()
    ids, vectors, _ = folder.vectors()
    assert np.array_equal(meta.column("id").to_numpy(), ids)
    assert (np.diff(ids) > 0).all()  # sorted by id
    docs, chunks = metadata["document_id"], metadata["chunk"]
    expected = {chunk_id(d, c): i for i, (d, c) in enumerate(zip(docs, chunks, strict=True))}
    for row, vec in zip(meta.to_pylist()[:200], vectors[:200], strict=True):
        src = expected[row["id"]]
        assert row["document_id"] == metadata["document_id"][src]
        assert row["chunk"] == metadata["chunk"][src]
        assert row["lang"] == metadata["lang"][src]  # user columns kept
        np.testing.assert_array_equal(vec, xb[src])
    # The index returns these ids, and each id's metadata describes the vector found.
    res = folder.search(xb[:20], 1)
    rows = metadata_rows(folder, res.I)
    for q, hits in enumerate(rows):
        assert hits[0]["document_id"] == metadata["document_id"][q]
        assert hits[0]["chunk"] == metadata["chunk"][q]


@pytest.mark.parametrize(
    ("encoding", "config"),
    [
        ("float", BuildConfig(factory="IVF16,Flat", shards=4)),
        ("float", BuildConfig(factory="IVF16,Flat", shards=4, merge="ondisk")),
        ("float", BuildConfig(factory="IVF16,Flat", shards=4, merge="none")),
        ("int8", BuildConfig(factory="IVF16,SQ8_direct_signed", shards=3)),
        ("ubinary", BuildConfig(shards=4)),
        ("binary", BuildConfig(factory="BIVF16", shards=2)),
    ],
)
def test_sharded_folders_equal_onebuild(tmp_path, xb, xq, metadata, encoding, config):
    one = build(
        tmp_path / "one",
        xb,
        metadata,
        encoding,
        config=BuildConfig(factory=config.factory, eval_queries=0),
    )
    many = build(tmp_path / "many", xb, metadata, encoding, config=config)
    assert many.count == one.count == len(xb)
    params = {"nprobe": 8} if "IVF" in (config.factory or "") else None
    a = open_index(tmp_path / "one").search(xq, 10, params=params)
    b = open_index(tmp_path / "many").search(xq, 10, params=params)
    np.testing.assert_array_equal(a.I, b.I)
    where = {"lang": "fr", "year": {"$lt": 2010}}
    fa = open_index(tmp_path / "one").search(xq, 10, params=params, filter=where)
    fb = open_index(tmp_path / "many").search(xq, 10, params=params, filter=where)
    np.testing.assert_array_equal(fa.I, fb.I)
    assert fb.filter_mode == ("oversample" if "BIVF" in many.index_factory else "selector")
    if many.layout == "single":
        folder = open_index(tmp_path / "many")
        ids, _, _ = folder.vectors()
        assert np.array_equal(np.sort(ids), folder.metadata().column("id").to_numpy())


def test_binary_folder_keeps_rescoring_vectors(tmp_path, xb, metadata):
    small = {k: v[:800] for k, v in metadata.items()}
    m = build(
        tmp_path / "b", xb[:800], small, "ubinary", rescore_vectors=codec.quantize(xb[:800], "int8")
    )
    assert m.rescore == {"file": ".rescore.npy", "dtype": "int8", "factor": 20}
    schema = pq.read_schema(tmp_path / "b" / "parts" / "part-00000.vectors.parquet")
    assert schema.field("vector").type == pa.list_(pa.uint8(), xb.shape[1] // 8)
    assert schema.field("rescore").type == pa.list_(pa.int8(), xb.shape[1])
    assert m.recall["rescored"] and m.recall["reference"] == "exact inner product, int8 vectors"


def test_build_folder_argument_errors(tmp_path, xb, metadata):
    with pytest.raises(ConfigError, match="xb"):
        build(tmp_path / "x", xb[:10], metadata)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        build(tmp_path / "full", xb, metadata)
    with pytest.raises(ConfigError, match="merge"):
        BuildConfig(merge="later")
    with pytest.raises(ConfigError, match="ondisk"):
        build(tmp_path / "o", xb, metadata, config=BuildConfig(merge="ondisk"))
