"""Index test data and helpers: seeded clustered vectors, a folder built the usual way, and
metadata rows of hits."""

from __future__ import annotations

import faiss
import numpy as np

from corpusbeam.inference import codec
from indexes import BuildConfig, IndexFolder, build_folder

ENDPOINT = "https://user:secret@models.example.com/embeddings?api-key=SECRET#x"


def clustered(n: int, d: int, seed: int) -> np.ndarray:
    """Unit vectors around 40 cluster centres in a 12-dimensional subspace, plus noise."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(1234).standard_normal((40, 12)).astype(np.float32)
    proj = np.random.default_rng(4321).standard_normal((12, d)).astype(np.float32)
    z = centres[rng.integers(0, 40, n)] + 0.5 * rng.standard_normal((n, 12), dtype=np.float32)
    x = z @ proj + 0.1 * rng.standard_normal((n, d), dtype=np.float32)
    faiss.normalize_L2(x)
    return x


def build(path, xb, metadata, encoding="float", **kw):
    """``build_folder`` of ``xb`` quantised to ``encoding``, with a full provenance."""
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


def metadata_rows(folder: IndexFolder, I: np.ndarray) -> list[list[dict | None]]:  # noqa: E741
    """The metadata rows of result ids ``I`` (nq, k), matched by id; None for -1."""
    table = folder.metadata()
    ids = table.column("id").to_numpy()
    pos = np.minimum(np.searchsorted(ids, I), max(len(ids) - 1, 0))
    rows = table.to_pylist()
    return [
        [rows[p] if i >= 0 and ids[p] == i else None for p, i in zip(pr, ir, strict=True)]
        for pr, ir in zip(pos, I, strict=True)
    ]
