"""Seeded, clustered data shared by the index tests (small: the whole suite runs in seconds)."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from tests.support.indexes import clustered

faiss.omp_set_num_threads(1)

N = 3000
D = 32


@pytest.fixture(scope="session")
def xb() -> np.ndarray:
    return clustered(N, D, seed=0)


@pytest.fixture(scope="session")
def xq() -> np.ndarray:
    return clustered(50, D, seed=1)


@pytest.fixture(scope="session")
def metadata() -> dict:
    return {
        "document_id": [f"doc-{i // 4}" for i in range(N)],
        "chunk": [i % 4 for i in range(N)],
        "uri": [f"file:///corpus/doc-{i // 4}.txt" for i in range(N)],
        "modality": ["text"] * N,
        "text": [f"passage {i}" for i in range(N)],
        "lang": ["en" if i % 3 else "fr" for i in range(N)],
        "year": [2000 + i % 25 for i in range(N)],
    }


@pytest.fixture(scope="session")
def float_folder(tmp_path_factory, xb, metadata):
    """An IVF16,Flat float folder of ``xb`` (built once, shared by the folder tests)."""
    from indexes import BuildConfig
    from tests.support.indexes import build

    path = tmp_path_factory.mktemp("f") / "index"
    build(path, xb, metadata, config=BuildConfig(factory="IVF16,Flat", eval_queries=50))
    return path
