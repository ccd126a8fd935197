"""``Hit``, one search result, and how a ``SearchResult``'s rows become hits.

Scores are "higher is better" everywhere: the inner product (cosine for the unit vectors
of float indexes, the rescored dot product for binary and int8 folders), or for a binary
index searched without rescoring ``1 - 2 * hamming / d``, the cosine of the +-1 vectors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from indexes.ann.search import SearchResult

__all__ = ["HIT_FIELDS", "Hit", "hit_scores", "make_hit"]

HIT_FIELDS = ("id", "document_id", "uri", "text")  # metadata columns lifted into a Hit
# A record's digest, for updates (``indexes.storage.tables.RECORD_DIGEST``): not a hit's.
_HIDDEN = frozenset({"_record_digest"})


@dataclass(frozen=True, kw_only=True)
class Hit:
    """One search result.

    ``id``: the chunk's int64 id; ``score``: higher is better (see the module docstring);
    ``document_id``, ``uri``, ``text`` (the chunk's text or the image's caption): from the
    metadata; ``metadata``: every other metadata column (``chunk``, ``modality``,
    ``char_start``, ``char_end``, ``content_hash`` and the user's columns); ``index``: the
    name of the folder it came from; ``ranks``: for lexical and hybrid searches, the hit's
    rank (from 1) in each ranking it came from (``{"dense": 3, "lexical": 1}``), and then
    ``score`` is the BM25 score (lexical) or the fused score (hybrid,
    ``corpusbeam.retrieval.fusion``); ``snippet``: when asked for, the best window of
    ``text`` with the query's terms marked (``corpusbeam.retrieval.snippets.Snippet.to_dict``).
    """

    id: int
    score: float
    document_id: str | None = None
    uri: str | None = None
    text: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    index: str | None = None
    ranks: dict[str, int] | None = None
    snippet: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of a hit (``corpusbeam search --json`` and ``POST /search``)."""
        out = {
            "id": self.id,
            "score": self.score,
            "document_id": self.document_id,
            "uri": self.uri,
            "text": self.text,
            "metadata": self.metadata,
        }
        if self.index is not None:
            out["index"] = self.index
        if self.ranks is not None:
            out["ranks"] = self.ranks
        if self.snippet is not None:
            out["snippet"] = self.snippet
        return out


def hit_scores(D: np.ndarray, result: SearchResult, d: int) -> np.ndarray:
    """Scores of the distances ``D``: a binary index's Hamming distances as cosines."""
    if result.metric == "hamming" and not result.rescored:
        return 1.0 - 2.0 * D.astype(np.float64) / d
    return D.astype(np.float64)


def make_hit(
    row: dict[str, Any], score: float, index: str, ranks: dict[str, int] | None = None
) -> Hit:
    """The hit of one metadata ``row``."""
    meta = {k: v for k, v in row.items() if k not in HIT_FIELDS and k not in _HIDDEN}
    return Hit(
        id=int(row["id"]),
        score=score,
        document_id=row.get("document_id"),
        uri=row.get("uri"),
        text=row.get("text"),
        metadata=meta,
        index=index,
        ranks=ranks,
    )
