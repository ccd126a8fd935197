"""open_index: a reader that refuses a tampered manifest, a missing or damaged file and a
mismatched encoding/model/size; memory-mapped opening."""

import json

import numpy as np
import pytest

from corpusbeam.errors import IndexFolderError
from indexes import open_index
from indexes.storage.manifest import Manifest
from tests.support.indexes import build


def test_reader_refuses_tampered_manifest(tmp_path, xb, metadata):
    path = tmp_path / "idx"
    build(path, xb[:500], {k: v[:500] for k, v in metadata.items()})
    data = json.loads((path / "manifest.json").read_text())
    data["encoding"] = "int8"
    (path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(IndexFolderError, match="modified"):
        open_index(path)


def test_reader_refuses_missing_and_damaged_files(tmp_path, xb, metadata):
    path = tmp_path / "idx"
    build(path, xb[:500], {k: v[:500] for k, v in metadata.items()})
    raw = bytearray((path / "index.faiss").read_bytes())
    raw[-1] ^= 0xFF
    (path / "index.faiss").write_bytes(bytes(raw))
    with pytest.raises(IndexFolderError, match="sha256"):
        open_index(path)
    (path / "parts" / "part-00000.metadata.parquet").unlink()
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
    build(tmp_path / "a", xb[:500], small, "float")
    build(tmp_path / "b", xb[:500], small, "int8")
    manifest = Manifest.from_json((tmp_path / "a" / "manifest.json").read_text())
    # Rewrite a's manifest (valid digest) claiming int8 over a's float files.
    files = dict(manifest.files)
    forged = Manifest(**{**manifest.__dict__, "encoding": "int8", "files": files, "digest": ""})
    (tmp_path / "a" / "manifest.json").write_text(forged.to_json())
    with pytest.raises(IndexFolderError, match=r"vectors\.parquet holds"):
        open_index(tmp_path / "a")


def test_open_memory_mapped(float_folder, xq):
    a = open_index(float_folder).search(xq, 5)
    b = open_index(float_folder, mmap=True, verify=False).search(xq, 5)
    np.testing.assert_array_equal(a.I, b.I)
