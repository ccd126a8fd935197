"""assemble_folder: shards added the way the index job's workers add them make the same
folder as build_folder (the two share one build path)."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexes import BuildConfig, build, build_folder, choose_index, chunk_ids, open_index
from indexes.assemble import assemble_folder
from inference.errors import IndexFolderError


def _shards(tmp_path, xb, metadata, spec, trained, n_shards=3):
    """Shard files as transforms.index_shards writes them: by id % shards, in id order."""
    ids = chunk_ids(metadata["document_id"], metadata["chunk"])
    shards = []
    for s in range(n_shards):
        rows = np.flatnonzero(ids % n_shards == s)
        rows = rows[np.argsort(ids[rows])]
        base = tmp_path / f"shard-{s:05d}"
        table = pa.table(
            {"id": ids[rows], **{k: [v[r] for r in rows] for k, v in metadata.items()}}
        )
        pq.write_table(table, f"{base}.metadata.parquet")
        vector = pa.FixedSizeListArray.from_arrays(pa.array(xb[rows].reshape(-1)), xb.shape[1])
        pq.write_table(pa.table({"id": ids[rows], "vector": vector}), f"{base}.vectors.parquet")
        files = {"metadata": f"{base}.metadata.parquet", "vectors": f"{base}.vectors.parquet"}
        files["index"] = None
        if spec.nlist:
            index = build.deserialize_index(trained, spec.encoding)
            build.add_vectors(index, xb[rows], ids[rows], spec)
            build.write_index(index, f"{base}.faiss")
            files["index"] = f"{base}.faiss"
        shards.append(files)
    return shards


def _manifest(path):
    data = json.loads((path / "manifest.json").read_text())
    for volatile in ("created", "latency_ms", "digest", "files"):
        data.pop(volatile)
    for trial in (data.get("recall") or {}).get("trials", []):
        trial.pop("latency_ms")  # measured: differs run to run
    return data


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat"])
def test_assembled_folder_equals_built_folder(tmp_path, xb, xq, metadata, factory):
    config = BuildConfig(factory=factory, eval_queries=50)
    built = build_folder(
        tmp_path / "built", xb, metadata, encoding="float", model="m", config=config
    )
    spec = choose_index(len(xb), xb.shape[1], "float", factory=factory)
    order = np.argsort(chunk_ids(metadata["document_id"], metadata["chunk"]), kind="stable")
    trained = build.serialize_index(build.train_index(spec, xb[order], seed=0))
    shards = _shards(tmp_path, xb, metadata, spec, trained)
    made = assemble_folder(
        tmp_path / "made", spec=spec, trained=trained, shards=shards, model="m", config=config
    )
    assert _manifest(tmp_path / "made") == _manifest(tmp_path / "built")
    same = {"metadata.parquet", "vectors.parquet"} | ({"index.faiss"} if spec.nlist == 0 else set())
    for name in same:
        assert made.files[name] == built.files[name], name
    a = open_index(tmp_path / "built").search(xq, 10)
    b = open_index(tmp_path / "made").search(xq, 10)
    np.testing.assert_array_equal(a.I, b.I)


def test_assemble_refuses_no_shards_and_disagreeing_shards(tmp_path, xb, metadata):
    spec = choose_index(len(xb), xb.shape[1], "float", factory="IVF16,Flat")
    trained = build.serialize_index(build.train_index(spec, xb, seed=0))
    with pytest.raises(IndexFolderError, match="no shards"):
        assemble_folder(tmp_path / "x", spec=spec, trained=trained, shards=[], model="m")
    shards = _shards(tmp_path, xb, metadata, spec, trained)
    shards[1]["index"] = None  # its vectors are in no shard index
    with pytest.raises(IndexFolderError, match="shard indexes hold"):
        assemble_folder(tmp_path / "y", spec=spec, trained=trained, shards=shards, model="m")
