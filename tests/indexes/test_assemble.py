"""assemble_folder: parts and shards written the way the index job's workers write them
make the same folder as build_folder, streamed part by part."""

import json

import numpy as np
import pytest

from corpusbeam.errors import IndexFolderError
from indexes import BuildConfig, build_folder, choose_index, open_index
from indexes.ann.serialize import deserialize_index, serialize_index, write_index
from indexes.ann.train import add_vectors, train_index
from indexes.building.assemble import assemble_folder
from indexes.storage.part_files import encode_part, file_entry
from indexes.storage.part_ranges import split_by_part
from indexes.storage.tables import folder_data


def _worker_parts(out, xb, metadata, spec, trained, n_parts=3):
    """Parts as transforms.build_index writes them: one id range each, in id order, with
    an IVF shard a part."""
    data = folder_data(xb, metadata, encoding="float")
    (out / "parts").mkdir(parents=True)
    parts = []
    for number, lo, hi in split_by_part(data.ids, n_parts):
        info, blobs = encode_part(
            number,
            data.table.slice(lo, hi - lo),
            data.xb[lo:hi],
            None,
            encoding="float",
            dimensions=data.dimensions,
        )
        for name, blob in blobs.items():
            (out / name).write_bytes(blob)
        record = {
            "part": number,
            "info": info.as_dict(),
            "files": {name: file_entry(blob) for name, blob in blobs.items()},
            "rescore_dtype": None,
            "index": None,
        }
        if spec.nlist:
            index = deserialize_index(trained, spec.encoding)
            add_vectors(index, data.xb[lo:hi], data.ids[lo:hi], spec)
            record["index"] = str(out.parent / f"shard-{number:05d}.faiss")
            write_index(index, record["index"])
        parts.append(record)
    return parts


def _manifest(path):
    data = json.loads((path / "manifest.json").read_text())
    for volatile in ("created", "latency_ms", "digest", "files", "layout", "index_files"):
        data.pop(volatile)
    recall = data.get("recall") or {}
    tuning = recall.get("tuning") or {}
    # measured: differs run to run
    for trial in [*recall.get("trials", []), tuning, tuning.get("cheaper"), tuning.get("dearer")]:
        if trial:
            trial.pop("latency_ms", None)
    return data


@pytest.mark.parametrize("factory", ["Flat", "IVF16,Flat"])
def test_assembled_folder_equals_built_folder(tmp_path, xb, xq, metadata, factory):
    merge = "ondisk" if "IVF" in factory else "memory"
    config = BuildConfig(factory=factory, eval_queries=50, shards=3, merge=merge)
    built = build_folder(
        tmp_path / "built", xb, metadata, encoding="float", model="m", config=config
    )
    spec = choose_index(len(xb), xb.shape[1], "float", factory=factory)
    data = folder_data(xb, metadata, encoding="float")
    trained = serialize_index(train_index(spec, data.xb, seed=0))
    parts = _worker_parts(tmp_path / "made", xb, metadata, spec, trained)
    made = assemble_folder(
        tmp_path / "made", spec=spec, trained=trained, parts=parts, model="m", config=config
    )
    assert _manifest(tmp_path / "made") == _manifest(tmp_path / "built")
    assert made.layout == ("ondisk" if spec.nlist else "single") == built.layout
    assert len(made.parts) == 3 and sum(p["rows"] for p in made.parts) == len(xb)
    for name in made.files:  # the parts are byte for byte the same
        if name.startswith("parts/"):
            assert made.files[name] == built.files[name], name
    a = open_index(tmp_path / "built").search(xq, 10)
    b = open_index(tmp_path / "made").search(xq, 10)
    np.testing.assert_array_equal(a.I, b.I)


def test_assemble_refuses_no_parts_and_a_missing_shard(tmp_path, xb, metadata):
    spec = choose_index(len(xb), xb.shape[1], "float", factory="IVF16,Flat")
    trained = serialize_index(train_index(spec, xb, seed=0))
    with pytest.raises(IndexFolderError, match="no parts"):
        assemble_folder(tmp_path / "x", spec=spec, trained=trained, parts=[], model="m")
    parts = _worker_parts(tmp_path / "y", xb, metadata, spec, trained)
    parts[1]["index"] = None  # a worker's shard never arrived
    with pytest.raises(IndexFolderError, match="shard is missing"):
        assemble_folder(tmp_path / "y", spec=spec, trained=trained, parts=parts, model="m")


def test_assembled_folder_keeps_the_recall_probe_an_update_would_sample(tmp_path, xb, metadata):
    """The build's exact pass also gives the recall probe (``indexes.building.probe``): listed in
    the manifest's files and equal to the one an update would otherwise sample with an
    exact pass of its own over every vector."""
    from indexes.building.probe import MARGIN, PROBE, RECALL_QUERIES, load_probe, sample_probe

    spec = choose_index(len(xb), xb.shape[1], "float", factory="Flat")
    trained = serialize_index(train_index(spec, xb, seed=0))
    parts = _worker_parts(tmp_path / "made", xb, metadata, spec, trained)
    config = BuildConfig(factory="Flat", eval_queries=50, seed=3)
    made = assemble_folder(
        tmp_path / "made", spec=spec, trained=trained, parts=parts, model="m", config=config
    )
    assert PROBE in made.files
    kept = load_probe(tmp_path / "made")
    folder = open_index(tmp_path / "made")
    sampled = sample_probe(
        folder.parts, min(RECALL_QUERIES, len(xb)), config.k, seed=config.seed + 1
    )
    assert kept.queries == sampled.queries == min(RECALL_QUERIES, len(xb))
    assert kept.gt_ids.shape == (kept.queries, config.k + MARGIN)
    np.testing.assert_array_equal(kept.query_ids, sampled.query_ids)
    np.testing.assert_array_equal(kept.gt_ids, sampled.gt_ids)
    np.testing.assert_allclose(kept.gt_scores, sampled.gt_scores, rtol=1e-6)
    assert (kept.k, kept.reference, kept.sampled) == (sampled.k, sampled.reference, kept.queries)
