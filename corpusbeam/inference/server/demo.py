"""The demo job: embed a few documents and queries on the local reference endpoint, search.

``run_demo`` starts the endpoint in-process (hash model), embeds ten short built-in
documents (``input_type=document``) and three queries (``input_type=query``) over HTTP, in
``float`` (ranked by cosine similarity) and in ``ubinary`` (ranked by Hamming distance),
prints the best document for each query, and reports whether every query found the document
it was written for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import httpx
import numpy as np

from corpusbeam.inference import codec
from corpusbeam.inference.protocol import API_VERSION, TEXT_ROUTE
from corpusbeam.inference.server import EndpointConfig, running_endpoint

__all__ = ["DOCUMENTS", "QUERIES", "DemoResult", "run_demo"]

DOCUMENTS: tuple[str, ...] = (
    "Apache Beam runs batch and streaming data pipelines on many runners.",
    "FAISS searches dense vectors quickly with flat, IVF and HNSW indexes.",
    "Sourdough bread needs flour, water, salt and a lively starter.",
    "The Eiffel Tower in Paris was finished in 1889 for the World's Fair.",
    "Photosynthesis turns sunlight, water and carbon dioxide into sugar.",
    "A marathon is 42.195 kilometres long.",
    "Espresso is brewed by forcing hot water through finely ground coffee.",
    "Binary quantisation keeps one bit per dimension of an embedding.",
    "The Pacific is the largest and deepest of the Earth's oceans.",
    "Tomatoes grow best in warm weather with plenty of sunlight.",
)
# Each query and the index of the document it was written for.
QUERIES: tuple[tuple[str, int], ...] = (
    ("how long is a marathon in kilometres", 5),
    ("brewing espresso coffee", 6),
    ("which ocean is the largest and deepest", 8),
)


@dataclass(frozen=True)
class DemoResult:
    """For each encoding, the best document index for each query, in QUERIES order."""

    best: dict[str, list[int]]

    @property
    def ok(self) -> bool:
        expected = [doc for _, doc in QUERIES]
        return all(found == expected for found in self.best.values())


def _embed(client: httpx.Client, texts: list[str], input_type: str, fmt: str) -> np.ndarray:
    response = client.post(
        TEXT_ROUTE,
        params={"api-version": API_VERSION},
        json={"input": texts, "input_type": input_type, "encoding_format": fmt},
    )
    response.raise_for_status()
    data = sorted(response.json()["data"], key=lambda item: item["index"])
    return codec.decode([item["embedding"] for item in data], fmt)


def _best(xb: np.ndarray, xq: np.ndarray, fmt: str) -> list[int]:
    if fmt == "ubinary":
        bits_b, bits_q = codec.unpack_bits(xb), codec.unpack_bits(xq)
        hamming = (bits_q[:, None, :] != bits_b[None, :, :]).sum(axis=2)
        return hamming.argmin(axis=1).tolist()
    return (xq @ xb.T).argmax(axis=1).tolist()


def run_demo(echo: Callable[[str], None] = print) -> DemoResult:
    """Run the demo (see the module docstring); ``echo`` receives the printed lines."""
    best: dict[str, list[int]] = {}
    with (
        running_endpoint(EndpointConfig(model="hash")) as ep,
        httpx.Client(base_url=ep.url, timeout=30) as client,
    ):
        echo(f"local reference endpoint at {ep.url}")
        for fmt in ("float", "ubinary"):
            xb = _embed(client, list(DOCUMENTS), "document", fmt)
            xq = _embed(client, [q for q, _ in QUERIES], "query", fmt)
            best[fmt] = _best(xb, xq, fmt)
            echo(f"[{fmt}]")
            for (query, expected), found in zip(QUERIES, best[fmt], strict=True):
                mark = "ok" if found == expected else f"MISS (expected {expected})"
                echo(f"  {query!r} -> {DOCUMENTS[found]!r} [{mark}]")
    return DemoResult(best=best)
