"""rebuild_folder: another index from the vectors a folder stores."""

import numpy as np

from indexes import BuildConfig, open_index, rebuild_folder
from tests.support.indexes import build


def test_rebuild_from_stored_vectors(tmp_path, xb, xq, metadata):
    small = {k: v[:1200] for k, v in metadata.items()}
    build(tmp_path / "a", xb[:1200], small, "ubinary", rescore_vectors=xb[:1200])
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
