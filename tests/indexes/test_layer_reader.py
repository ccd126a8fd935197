"""LayeredParts reads base minus removed plus delta as one table, even when every base
row is removed (an update that changed every row of the live version)."""

from __future__ import annotations

import numpy as np

from indexes.storage.layer_reader import LayeredParts
from indexes.storage.part_files import write_parts
from indexes.storage.part_reader import Parts
from indexes.storage.tables import folder_data


def _parts(folder, docs: list[str], seed: int) -> Parts:
    folder.mkdir()
    xb = np.random.default_rng(seed).standard_normal((len(docs), 4)).astype(np.float32)
    data = folder_data(xb, {"document_id": docs, "chunk": [0] * len(docs)}, encoding="float")
    infos, _ = write_parts(folder, data, 1)
    return Parts(folder, infos, encoding="float", dimensions=4)


def test_every_base_row_removed_leaves_the_delta_rows(tmp_path):
    base = _parts(tmp_path / "base", ["a", "b", "c"], 0)
    delta = _parts(tmp_path / "delta", ["a", "d"], 1)
    layered = LayeredParts(base, delta, np.sort(base.ids()))
    assert layered.count == 2
    np.testing.assert_array_equal(layered.ids(), delta.ids())
