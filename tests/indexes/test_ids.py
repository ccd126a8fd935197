"""Stable ids: the same chunk gets the same id on every run and machine."""

import numpy as np
import pytest

from corpusbeam.errors import ConfigError
from indexes.storage.ids import check_ids, chunk_id, chunk_ids


def test_chunk_id_is_a_fixed_function_of_document_and_chunk():
    # Golden value: blake2b-64 of "doc-1\x000", big-endian, top bit cleared.
    assert chunk_id("doc-1", 0) == 3774228563900257389
    assert chunk_id("doc-1", 0) == chunk_id("doc-1", 0)
    assert chunk_id("doc-1", 0) != chunk_id("doc-1", 1) != chunk_id("doc-10", 0)
    assert 0 <= chunk_id("x", 3) < 2**63


def test_chunk_ids_vectorised_and_unique():
    ids = chunk_ids(["a", "a", "b"], [0, 1, 0])
    assert ids.dtype == np.int64
    assert ids.tolist() == [chunk_id("a", 0), chunk_id("a", 1), chunk_id("b", 0)]


def test_duplicate_chunk_is_an_error():
    with pytest.raises(ConfigError, match="duplicate"):
        chunk_ids(["a", "a"], [0, 0])


@pytest.mark.parametrize(("doc", "chunk"), [("", 0), ("a", -1), ("a", 1.5), ("a", True), (None, 0)])
def test_bad_inputs_name_the_field(doc, chunk):
    with pytest.raises(ConfigError):
        chunk_id(doc, chunk)


def test_check_ids_shapes_and_sign():
    with pytest.raises(ConfigError, match="shape"):
        check_ids(np.arange(3), 4)
    with pytest.raises(ConfigError, match="non-negative"):
        check_ids(np.array([-1, 2]), 2)
