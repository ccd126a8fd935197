"""The resume tests' corpus and settings: one-chunk records, small batches, and the ids and
vectors of a version (what a resumed run's index must equal)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from indexes.reader import open_index
from indexes.storage import versions

BATCH = 8  # max_concurrency 2 x max_inputs 4
SMALL = {"max_inputs": 4, "max_concurrency": 2, "shards": 2}


def write_corpus(folder: Path, n: int, files: int = 1) -> Path:
    """``n`` one-chunk records with ids, in ``files`` JSONL files."""
    folder.mkdir(parents=True, exist_ok=True)
    for f in range(files):
        lines = [
            json.dumps(
                {"id": f"d{i}", "text": f"Document {i} on the {i % 7} river, {i * 13} hills."}
            )
            for i in range(f, n, files)
        ]
        (folder / f"docs{f}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def ids_and_vectors(output: Path) -> tuple[np.ndarray, np.ndarray]:
    ids, xb, _ = open_index(versions.resolve_index_folder(output)).vectors()
    order = np.argsort(ids)
    return ids[order], xb[order]
