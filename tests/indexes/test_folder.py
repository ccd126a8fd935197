"""Index folders: layout, manifest, ids and metadata row for row, and a reader that refuses
a tampered manifest, a missing or damaged file and a mismatched encoding/model/size."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexes.folder import BuildConfig, build_folder, metadata_table, open_index
from indexes.ids import chunk_id
from indexes.manifest import Manifest, sanitize_endpoint
from inference import codec
from inference.errors import ConfigError, IndexFolderError

ENDPOINT = "https://user:secret@models.example.com/embeddings?api-key=SECRET#x"


def _build(path, xb, metadata, encoding="float", **kw):
    x = codec.quantize(xb, encoding)
    return build_folder(
        path,
        x,
        metadata,
        encoding=encoding,
        model="all-MiniLM-L6-v2",
        endpoint=ENDPOINT,
        api_version="2024-05-01-preview",
        input_type="document",
        config=kw.pop("config", BuildConfig(eval_queries=50)),
        **kw,
    )


@pytest.fixture(scope="module")
def float_folder(tmp_path_factory, xb, metadata):
    path = tmp_path_factory.mktemp("f") / "index"
    _build(path, xb, metadata, config=BuildConfig(factory="IVF16,Flat", eval_queries=50))
    return path


def test_layout_and_manifest(float_folder, xb):
    names = sorted(p.relative_to(float_folder).as_posix() for p in float_folder.rglob("*"))
    assert names == ["index.faiss", "manifest.json", "metadata.parquet", "vectors.parquet"]
    m = Manifest.from_json((float_folder / "manifest.json").read_text())
    assert (m.encoding, m.dimensions, m.count) == ("float", xb.shape[1], len(xb))
    assert m.index_factory == "IVF16,Flat" and m.metric == "inner_product" and m.normalized
    assert m.endpoint == "https://models.example.com/embeddings"
    assert "SECRET" not in (float_folder / "manifest.json").read_text()
    assert m.api_version == "2024-05-01-preview" and m.input_type == "document"
    assert set(m.search_params) == {"nprobe"}
    assert m.recall["k"] == 10 and m.recall["value"] >= 0.9 and m.recall["queries"] == 50
    assert m.latency_ms > 0
    assert set(m.files) == set(names) - {"manifest.json"}
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
    rows = folder.lookup(res.I)
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
def test_sharded_folders_equal_one_build(tmp_path, xb, xq, metadata, encoding, config):
    one = _build(
        tmp_path / "one",
        xb,
        metadata,
        encoding,
        config=BuildConfig(factory=config.factory, eval_queries=0),
    )
    many = _build(tmp_path / "many", xb, metadata, encoding, config=config)
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


def test_reader_refuses_tampered_manifest(tmp_path, xb, metadata):
    path = tmp_path / "idx"
    _build(path, xb[:500], {k: v[:500] for k, v in metadata.items()})
    data = json.loads((path / "manifest.json").read_text())
    data["encoding"] = "int8"
    (path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexFolderError, match="modified"):
        open_index(path)


def test_reader_refuses_missing_and_damaged_files(tmp_path, xb, metadata):
    path = tmp_path / "idx"
    _build(path, xb[:500], {k: v[:500] for k, v in metadata.items()})
    raw = bytearray((path / "index.faiss").read_bytes())
    raw[-1] ^= 0xFF
    (path / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(IndexFolderError, match="sha256"):
        open_index(path)
    (path / "metadata.parquet").unlink()
    with pytest.raises(IndexFolderError, match="missing"):
        open_index(path, verify=False)
    (path / "manifest.json").unlink()
    with pytest.raises(IndexFolderError, match=r"manifest\.json missing"):
        open_index(path)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"expect_encoding": "ubinary"}, "encoding"),
        ({"expect_model": "cohere-embed-v3"}, "model"),
        ({"expect_dimensions": 1024}, "dimensions"),
    ],
)
def test_reader_refuses_mismatch(float_folder, kwargs, match):
    with pytest.raises(IndexFolderError, match=match):
        open_index(float_folder, **kwargs)


def test_reader_refuses_vectors_of_another_encoding(tmp_path, xb, metadata):
    """A consistent-looking folder whose files were swapped in from another build."""
    small = {k: v[:500] for k, v in metadata.items()}
    _build(tmp_path / "a", xb[:500], small, "float")
    _build(tmp_path / "b", xb[:500], small, "int8")
    manifest = Manifest.from_json((tmp_path / "a" / "manifest.json").read_text())
    # Rewrite a's manifest (valid digest) claiming int8 over a's float files.
    files = dict(manifest.files)
    forged = Manifest(**{**manifest.__dict__, "encoding": "int8", "files": files, "digest": ""})
    (tmp_path / "a" / "manifest.json").write_text(forged.to_json())
    with pytest.raises(IndexFolderError, match=r"vectors\.parquet holds"):
        open_index(tmp_path / "a")


def test_unknown_format_version(float_folder, tmp_path):
    data = json.loads((float_folder / "manifest.json").read_text())
    data["format_version"] = 99
    with pytest.raises(IndexFolderError, match="format_version"):
        Manifest.from_json(json.dumps(data))


def test_vectors_parquet_has_fixed_size_lists(float_folder, xb):
    schema = pq.read_schema(float_folder / "vectors.parquet")
    assert schema.field("id").type == pa.int64()
    assert schema.field("vector").type == pa.list_(pa.float32(), xb.shape[1])


def test_binary_folder_keeps_rescoring_vectors(tmp_path, xb, metadata):
    small = {k: v[:800] for k, v in metadata.items()}
    m = _build(
        tmp_path / "b", xb[:800], small, "ubinary", rescore_vectors=codec.quantize(xb[:800], "int8")
    )
    assert m.rescore == {"file": "rescore.npy", "dtype": "int8", "factor": 20}
    schema = pq.read_schema(tmp_path / "b" / "vectors.parquet")
    assert schema.field("vector").type == pa.list_(pa.uint8(), xb.shape[1] // 8)
    assert schema.field("rescore").type == pa.list_(pa.int8(), xb.shape[1])
    assert m.recall["rescored"] and m.recall["reference"] == "exact inner product, int8 vectors"


def test_metadata_table_standard_columns_and_errors(metadata):
    t = metadata_table({"document_id": ["a", "b"], "chunk": [0, 0], "tag": ["x", "y"]})
    assert t.column_names[:9] == [
        "id",
        "document_id",
        "chunk",
        "uri",
        "modality",
        "text",
        "char_start",
        "char_end",
        "content_hash",
    ]
    assert t.column("uri").null_count == 2 and t.column("tag").to_pylist() == ["x", "y"]
    with pytest.raises(ConfigError, match="document_id"):
        metadata_table({"chunk": [0]})
    with pytest.raises(ConfigError, match=r"metadata\.id"):
        metadata_table({"document_id": ["a"], "chunk": [0], "id": [5]})


def test_build_folder_argument_errors(tmp_path, xb, metadata):
    with pytest.raises(ConfigError, match="xb"):
        _build(tmp_path / "x", xb[:10], metadata)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    with pytest.raises(ConfigError, match="not empty"):
        _build(tmp_path / "full", xb, metadata)
    with pytest.raises(ConfigError, match="merge"):
        BuildConfig(merge="later")
    with pytest.raises(ConfigError, match="ondisk"):
        _build(tmp_path / "o", xb, metadata, config=BuildConfig(merge="ondisk"))


def test_sanitize_endpoint():
    assert sanitize_endpoint(ENDPOINT) == "https://models.example.com/embeddings"
    assert sanitize_endpoint("http://127.0.0.1:8088/") == "http://127.0.0.1:8088/"
    with pytest.raises(ConfigError, match="endpoint"):
        Manifest(
            model="m",
            dimensions=8,
            encoding="float",
            index_factory="Flat",
            count=1,
            metric="inner_product",
            endpoint=ENDPOINT,
        )


def test_open_memory_mapped(float_folder, xq):
    a = open_index(float_folder).search(xq, 5)
    b = open_index(float_folder, mmap=True, verify=False).search(xq, 5)
    np.testing.assert_array_equal(a.I, b.I)


def test_rebuild_from_stored_vectors(tmp_path, xb, xq, metadata):
    small = {k: v[:1200] for k, v in metadata.items()}
    _build(tmp_path / "a", xb[:1200], small, "ubinary", rescore_vectors=xb[:1200])
    from indexes.folder import rebuild_folder

    m = rebuild_folder(
        tmp_path / "a", tmp_path / "b", config=BuildConfig(factory="BIVF8", eval_queries=20)
    )
    assert m.index_factory == "BIVF8" and m.rescore["dtype"] == "float32"
    a, b = open_index(tmp_path / "a"), open_index(tmp_path / "b")
    assert a.metadata().equals(b.metadata())
    assert (m.model, m.endpoint, m.input_type) == (
        a.manifest.model,
        a.manifest.endpoint,
        a.manifest.input_type,
    )
    ra = a.search(xq, 5, filter={"lang": "en"})
    rb = b.search(xq, 5, filter={"lang": "en"}, params={"nprobe": 8})
    np.testing.assert_array_equal(ra.I, rb.I)  # exact Hamming + float rescoring both ways
