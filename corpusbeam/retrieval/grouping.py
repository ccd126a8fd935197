"""Hits grouped by document: the best documents, each with its best chunks and a count.

    groups = group_by_document(hits, per_document=3)
    groups[0].document_id, groups[0].score, groups[0].count, groups[0].hits

``hits`` is a ranking (best first), usually deeper than the page: a document's place is
that of its best chunk, its ``score`` that chunk's score, ``hits`` its first
``per_document`` chunks in the ranking's order, and ``count`` how many of its chunks the
ranking holds (chunks past the ranking's depth are not counted). Hits without a
``document_id`` (an index built without one) stand alone, grouped by their own id. Hits
of several indexes are grouped by (index, document).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.hits import Hit

__all__ = ["DEFAULT_PER_DOCUMENT", "DocumentGroup", "group_by_document"]

DEFAULT_PER_DOCUMENT = 3


@dataclass(frozen=True)
class DocumentGroup:
    """One document of a grouped ranking."""

    document_id: str | None
    score: float
    count: int
    hits: tuple[Hit, ...]
    index: str | None = None

    def to_dict(self) -> dict:
        out = {
            "document_id": self.document_id,
            "score": self.score,
            "count": self.count,
            "hits": [h.to_dict() for h in self.hits],
        }
        if self.index is not None:
            out["index"] = self.index
        return out


def group_by_document(
    hits: Sequence[Hit], *, per_document: int = DEFAULT_PER_DOCUMENT
) -> list[DocumentGroup]:
    """The documents of ``hits`` in the order of their best hit (see the module)."""
    if isinstance(per_document, bool) or not isinstance(per_document, int) or per_document < 1:
        raise ConfigError("per_document", per_document, "must be an integer >= 1")
    members: dict[tuple, list[Hit]] = {}
    for h in hits:
        key = (h.index, h.document_id) if h.document_id is not None else (h.index, None, h.id)
        members.setdefault(key, []).append(h)
    return [
        DocumentGroup(
            document_id=group[0].document_id,
            score=group[0].score,
            count=len(group),
            hits=tuple(group[:per_document]),
            index=group[0].index,
        )
        for group in members.values()
    ]
