"""What the quality gate measures: a version folder's relevance and recall on the gate's
queries (``pipeline.gate`` decides with the figures).

``embed_gate_queries`` embeds the labelled queries (BEIR ``queries.jsonl`` and
``qrels.tsv``, ``indexes.building.labels``) once, while the run's endpoint is up, with the
run's client settings and ``input_type="query"``: as floats, and in each encoding a
version searches with that is not float (for the new version's settings and the live
one's). ``measure_folder`` then searches a finished folder with them, dense, as a user
would (tuned parameters, rescoring when the folder has it):

- ``ndcg@10`` and ``recall@100`` against the judgements (a document counts once, at its
  best chunk, as ``corpusbeam evaluate --qrels`` counts it);
- ``recall@10`` against exact search over the folder's own vectors, with the same
  queries, or without labels with the version's recall probe (``indexes.building.probe``:
  rows of the folder held out of their own results, their exact neighbours kept by the
  build), else ``SAMPLED`` rows drawn now. The exact neighbours are searched part by
  part (``indexes.building.recall``), so the memory is a batch's, not the version's.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import ClientSettings, EmbeddingsClient
from indexes.ann.spec import family_of
from indexes.building.labels import ndcg_at_k, recall_at_k
from indexes.building.probe import load_probe, sample_probe
from indexes.building.recall import streaming_reference
from indexes.building.tune import drop_ids
from indexes.building.tune import recall_at_k as recall_vs_exact
from indexes.reader import open_index
from indexes.storage.manifest import Manifest
from pipeline.gate import read_labels

__all__ = ["DEPTH", "SAMPLED", "GateQueries", "embed_gate_queries", "measure_folder"]

DEPTH = 100  # chunks fetched a query: documents are ranked at their best chunk
SAMPLED = 200  # rows sampled from a folder without a probe, for recall without labels
K = 10
_BATCH = 64


@dataclass(frozen=True)
class GateQueries:
    """The judged queries, their digest, and their vectors by (encoding, dimensions)."""

    ids: tuple[str, ...]
    qrels: Mapping[str, Mapping[str, int]]
    digest: str  # sha256 of both files: figures recorded on other queries are not compared
    vectors: Mapping[tuple[str, int | None], np.ndarray] = field(repr=False)

    def for_folder(self, manifest: Manifest, dimensions: int | None) -> np.ndarray:
        """The query vectors a folder with ``manifest`` searches with."""
        encoding = "float" if _searches_float(manifest) else manifest.encoding
        try:
            return self.vectors[(encoding, dimensions)]
        except KeyError:
            raise ConfigError(
                "gate_queries", encoding, "no query vectors in this encoding were embedded"
            ) from None


def _searches_float(manifest: Manifest) -> bool:
    return manifest.rescore is not None or family_of(manifest.encoding) == "float"


def embed_gate_queries(
    queries_path: str,
    qrels_path: str,
    settings: ClientSettings,
    wanted: set[tuple[str, int | None]],
) -> GateQueries:
    """Read and embed the judged queries for each wanted (encoding, dimensions)."""
    labels = read_labels(queries_path, qrels_path)
    ids, judged = labels.ids, labels.judged
    texts = list(labels.texts)
    vectors: dict[tuple[str, int | None], np.ndarray] = {}
    with EmbeddingsClient(settings) as client:
        for encoding, dims in sorted(wanted, key=str):
            rows = [
                client.embed_texts(
                    texts[i : i + _BATCH],
                    input_type="query",
                    dimensions=dims,
                    encoding_format=encoding,
                ).vectors
                for i in range(0, len(texts), _BATCH)
            ]
            vectors[(encoding, dims)] = np.concatenate(rows)
    return GateQueries(ids=ids, qrels=judged, digest=labels.digest, vectors=vectors)


def wanted_encodings(manifests: list[tuple[str, int | None, bool]]) -> set[tuple[str, int | None]]:
    """(encoding, dimensions) to embed for versions given as (encoding, dimensions,
    rescored): always float, and each unrescored non-float encoding."""
    wanted: set[tuple[str, int | None]] = set()
    for encoding, dims, rescored in manifests:
        wanted.add(("float", dims))
        if not rescored and family_of(encoding) != "float":
            wanted.add((encoding, dims))
    return wanted


def _ranked_documents(rows: list[dict], n: int) -> list[str]:
    out: list[str] = []
    for row in rows:
        doc = row.get("document_id")
        if doc is not None and doc not in out:
            out.append(doc)
            if len(out) == n:
                break
    return out


def _relevance(index, xq: np.ndarray, queries: GateQueries) -> dict[str, float]:
    res = index.search(xq, DEPTH)
    ndcg = recall = 0.0
    for qid, ids in zip(queries.ids, res.I, strict=True):
        rows = index.lookup(np.asarray(ids[ids >= 0], dtype=np.int64))
        ranked = _ranked_documents(rows, DEPTH)
        ndcg += ndcg_at_k(ranked, queries.qrels[qid], 10)
        recall += recall_at_k(ranked, queries.qrels[qid], DEPTH)
    n = len(queries.ids)
    return {"ndcg@10": round(ndcg / n, 4), f"recall@{DEPTH}": round(recall / n, 4)}


def _recall_vs_exact(index, folder, xq: np.ndarray | None) -> tuple[float, str]:
    """(recall@K of the index against exact search, which queries measured it)."""
    if xq is not None:
        I_gt, _ = streaming_reference(index.parts, xq, K)
        return recall_vs_exact(index.search(xq, K).I, I_gt, K), "the gate's queries"
    probe = load_probe(Path(folder))
    source = "the version's recall probe"
    if probe is None:
        probe = sample_probe(index.parts, SAMPLED, K, seed=0)
        source = f"{probe.queries} rows sampled from the version"
    I = drop_ids(index.search(probe.xq, K + 1).I, probe.query_ids, K)  # noqa: E741
    return recall_vs_exact(I, probe.gt_ids[:, :K], K), source


def measure_folder(
    folder: str | os.PathLike, queries: GateQueries | None, dimensions: int | None
) -> dict:
    """The gate's figures of the finished folder (see the module docstring)."""
    index = open_index(folder, verify=False)
    figures: dict = {}
    xq = None
    if queries is not None:
        xq = queries.for_folder(index.manifest, dimensions)
        figures.update(_relevance(index, xq, queries))
        figures["queries"] = len(queries.ids)
    recall, source = _recall_vs_exact(index, folder, xq)
    figures[f"recall@{K}_vs_exact"] = round(recall, 5)
    figures["recall_queries"] = source
    return figures
