"""One page of results for a RAG application: paged, grouped by document, diversified,
with snippets -- over one or several index folders.

    from corpusbeam.retrieval.results import PageOptions, search_page

    page = search_page([searcher], "how do I reset it?", options=PageOptions(k=5, group=True))
    page.groups[0].document_id, page.groups[0].count, page.groups[0].hits
    nxt = search_page([searcher], "how do I reset it?",
                      options=PageOptions(k=5, group=True, cursor=page.next_cursor))

The steps, in order: rank ``n`` candidates (merged by score over several folders);
reorder them by MMR when ``diversity`` > 0 (``corpusbeam.retrieval.mmr``); group them by
document when ``group`` (``corpusbeam.retrieval.grouping``); cut the page at the cursor's
offset (``corpusbeam.retrieval.paging``); add snippets to the page's hits when
``snippet`` > 0 (``corpusbeam.retrieval.snippets``).

``depth`` is the number of candidates a ranking is made of: ``max(HYBRID_DEPTH, 10 * k)``
for the first page, kept by the cursor, so every page is cut from the same ranking (a
rescored or graph index's candidates, and a fusion's, depend on how many are asked for);
a hybrid ranking is fused by one fusion for every folder (``fusion``: a method, a ``Fusion``
or ``Searcher.fusion_for`` keywords; ``corpusbeam.retrieval.fusion.common_fusion``), named
by the page (``Page.fusion``) and fingerprinted in the cursor, so every page is fused alike;
such a ranking pages through its ``depth`` candidates, and rows are read for the hits up
to the page only (all candidates when grouped or diversified). A plain lexical ranking
(exact top-k: the same at any k) pages up to ``MAX_RANKED`` hits. Searchers are fixed
versions: a cursor naming another version than a searcher's is ``CursorExpiredError``
(the service finds the pinned versions first: ``corpusbeam.retrieval.live.LiveIndex.at``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.fusion import Fusion, common_fusion
from corpusbeam.retrieval.grouping import DEFAULT_PER_DOCUMENT, DocumentGroup, group_by_document
from corpusbeam.retrieval.hits import Hit
from corpusbeam.retrieval.hybrid import HYBRID_DEPTH
from corpusbeam.retrieval.mmr import candidate_vectors, check_diversity, mmr
from corpusbeam.retrieval.multi import check_mergeable, common_mode, embed_for, merge_hits
from corpusbeam.retrieval.paging import MAX_DEPTH, Cursor, CursorExpiredError, fingerprint
from corpusbeam.retrieval.searcher import Filter, Searcher
from corpusbeam.retrieval.snippets import snippet

__all__ = ["MAX_RANKED", "Page", "PageOptions", "search_page"]

MAX_RANKED = 1000  # hits a plain ranking pages through


@dataclass(frozen=True, kw_only=True)
class PageOptions:
    """``k``: hits (or documents, grouped) a page; ``group``: group by document, each with
    its ``per_document`` best chunks; ``diversity``: MMR in [0, 1] (0: off); ``snippet``:
    words in each hit's snippet (0: none); ``cursor``: the previous page's ``next_cursor``."""

    k: int = 10
    group: bool = False
    per_document: int = DEFAULT_PER_DOCUMENT
    diversity: float = 0.0
    snippet: int = 0
    cursor: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k < 1:
            raise ConfigError("k", self.k, "must be an integer >= 1")
        if not isinstance(self.group, bool):
            raise ConfigError("group", self.group, "must be true or false")
        pd = self.per_document
        if isinstance(pd, bool) or not isinstance(pd, int) or pd < 1:
            raise ConfigError("per_document", pd, "must be an integer >= 1")
        check_diversity(self.diversity)
        if isinstance(self.snippet, bool) or not isinstance(self.snippet, int) or self.snippet < 0:
            raise ConfigError("snippet", self.snippet, "must be a number of words >= 0 (0: none)")


@dataclass(frozen=True)
class Page:
    """One page: ``hits`` (grouped: the groups' hits, in order), ``groups`` (None unless
    grouped), ``next_cursor`` (None on the last page), the ``mode``, ``versions`` and the
    ``fusion`` of a hybrid page (None otherwise)."""

    hits: list[Hit]
    groups: list[DocumentGroup] | None
    next_cursor: str | None
    mode: str
    versions: dict[str, str | None] = field(default_factory=dict)
    fusion: Fusion | None = None


def search_page(
    searchers: Sequence[Searcher],
    query: str | None = None,
    *,
    vector: np.ndarray | None = None,
    image: object = None,
    vectors: Sequence[np.ndarray | None] | None = None,
    filter: Filter = None,
    mode: str | None = None,
    fusion: Fusion | str | Mapping[str, Any] | None = None,
    options: PageOptions = PageOptions(),
) -> Page:
    """One page of a query's results (see the module). ``vectors``: each searcher's query
    vector when the caller embedded the query already; ``fusion``: a hybrid query's fusion
    (a method, a ``Fusion`` or ``fusion_for`` keywords; default: the folders')."""
    if len(searchers) > 1:
        check_mergeable(searchers)
    mode = common_mode(searchers, mode) if query is not None else "dense"
    if not isinstance(fusion, Mapping):
        fusion = None if fusion is None else {"fusion": fusion}
    fused = common_fusion(searchers, mode, fusion)  # one fusion for every folder and page
    versions = {s.name: s.version for s in searchers}
    fp = _fingerprint(query, vector, image, filter, mode, fused, versions, options)
    offset, depth = 0, max(options.k, min(MAX_DEPTH, max(HYBRID_DEPTH, 10 * options.k)))
    if options.cursor is not None:
        cursor = Cursor.decode(options.cursor)
        cursor.check(fp)
        for name, version in cursor.versions.items():
            if versions.get(name, version) != version:
                raise CursorExpiredError(
                    "cursor", version, f"index {name} now serves {versions[name]}"
                )
        offset, depth = cursor.offset, cursor.depth
    whole = options.group or options.diversity > 0  # the page needs every candidate
    # Exact lexical top-k is the same ranking at any k; the others are cut from `depth`.
    limit = MAX_RANKED if mode == "lexical" and not whole else depth
    n = depth if whole else min(offset + options.k, limit)
    if vectors is None:
        vectors = _embed(searchers, query, vector, image, mode)
    ranked = _ranked(searchers, query, vectors, n, depth, filter, mode, fused)
    if options.diversity > 0:
        ranked = _diversified(searchers, ranked, options.diversity)
    groups = None
    if options.group:
        groups = group_by_document(ranked, per_document=options.per_document)
        items: list = groups[offset : offset + options.k]
    else:
        items = ranked[offset : offset + options.k]
    end = offset + options.k
    if whole:
        more = end < (len(groups) if groups is not None else len(ranked))
    else:  # a full page short of the limit: there may be more
        more = len(ranked) == n and end < limit
    if options.snippet and query is not None:
        items = [_with_snippets(x, query, options.snippet) for x in items]
    hits = [h for g in items for h in g.hits] if groups is not None else items
    next_cursor = Cursor(versions, end, depth, fp).encode() if more else None
    groups = items if groups is not None else None
    return Page(hits, groups, next_cursor, mode, versions, fused)


def _fingerprint(query, vector, image, filter, mode, fusion, versions, options) -> str:
    if isinstance(image, bytes):
        image = hashlib.sha256(image).hexdigest()
    return fingerprint(
        {
            "query": query,
            "vector": None if vector is None else np.asarray(vector, np.float32).tobytes().hex(),
            "image": None if image is None else str(image),
            "filter": filter,
            "mode": mode,
            "fusion": None if fusion is None else fusion.describe(),
            "indexes": sorted(versions),
            "group": options.group,
            "per_document": options.per_document if options.group else None,
            "diversity": options.diversity,
        }
    )


def _embed(searchers, query, vector, image, mode) -> list[np.ndarray | None]:
    if vector is not None:
        return [np.asarray(vector, dtype=np.float32).reshape(1, -1)] * len(searchers)
    if query is not None and mode == "lexical":
        return [None] * len(searchers)
    return embed_for(searchers, query, image=image)


def _ranked(searchers, query, vectors, n, depth, filter, mode, fusion) -> list[Hit]:
    if query is None or mode == "dense":
        lists = [_dense(s, xq, n, depth, filter) for s, xq in zip(searchers, vectors, strict=True)]
    else:
        lists = [
            s.search_texts(
                [query], n, filter=filter, mode=mode, vectors=xq, depth=depth, fusion=fusion
            )[0]
            for s, xq in zip(searchers, vectors, strict=True)
        ]
    return merge_hits(lists, n) if len(lists) > 1 else lists[0]


def _dense(s: Searcher, xq: np.ndarray, n: int, depth: int, filter: Filter) -> list[Hit]:
    """The first ``n`` hits of one dense ranking ``depth`` deep (rows of those ``n`` only):
    a rescored or graph index's candidates depend on k, so every page of a ranking is cut
    from a search of the same depth."""
    xq = np.asarray(xq)
    xq = xq[None, :] if xq.ndim == 1 else xq
    if xq.dtype.kind == "f" and not np.isfinite(xq).all():
        raise ConfigError("vector", "NaN/inf", "query vectors must be finite")
    flt = None if filter is None else dict(filter)
    res = s.folder.search(xq, max(n, depth), filter=flt, rescore=s.rescore)
    return s.hits(replace(res, D=res.D[:, :n], I=res.I[:, :n]))[0]


def _diversified(searchers: Sequence[Searcher], ranked: list[Hit], diversity: float) -> list[Hit]:
    """``ranked`` in MMR order, over each hit's vector from its own folder."""
    if not ranked:
        return ranked
    by_name = {s.name: s for s in searchers}
    xb = np.zeros((len(ranked), searchers[0].dimensions), np.float32)
    for name, s in by_name.items():
        at = [i for i, h in enumerate(ranked) if h.index == name]
        if at:
            ids = np.asarray([ranked[i].id for i in at], dtype=np.int64)
            xb[at] = candidate_vectors(s.folder, ids)
    scores = np.asarray([h.score for h in ranked])
    return [ranked[i] for i in mmr(scores, xb, len(ranked), diversity=diversity)]


def _with_snippets(item: Hit | DocumentGroup, query: str, words: int) -> Hit | DocumentGroup:
    def one(h: Hit) -> Hit:
        return (
            h
            if h.text is None
            else replace(h, snippet=snippet(h.text, query, words=words).to_dict())
        )

    if isinstance(item, DocumentGroup):
        return replace(item, hits=tuple(one(h) for h in item.hits))
    return one(item)
