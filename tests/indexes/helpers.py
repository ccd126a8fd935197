"""Helpers for the index tests: a folder built the usual way, and metadata rows of hits."""

from __future__ import annotations

import numpy as np

from corpusbeam.inference import codec
from indexes import BuildConfig, IndexFolder, build_folder

ENDPOINT = "https://user:secret@models.example.com/embeddings?api-key=SECRET#x"


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
