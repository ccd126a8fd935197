"""One query against several index folders, hits merged by score.

    from corpusbeam.retrieval.multi import search_all

    hits = search_all([texts, images], "a red circle", k=10)

Hits merge by score only when the folders' scores are comparable: same model,
dimensions and ``Searcher.score_kind`` (``check_mergeable``); otherwise ConfigError names
the first folder that differs. A text query is embedded once per distinct endpoint,
dimensions and encoding (``embed_for``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import ImageInput
from corpusbeam.retrieval.fusion import common_fusion
from corpusbeam.retrieval.hits import Hit
from corpusbeam.retrieval.hybrid import check_mode
from corpusbeam.retrieval.searcher import Filter, Searcher, check_one_query

__all__ = ["check_mergeable", "common_mode", "embed_for", "merge_hits", "search_all"]


def merge_hits(lists: Sequence[Sequence[Hit]], k: int) -> list[Hit]:
    """The ``k`` best hits of several lists, by score (ties: earlier list first)."""
    merged = [h for hits in lists for h in hits]
    merged.sort(key=lambda h: -h.score)  # stable: ties keep the lists' order
    return merged[:k]


def check_mergeable(searchers: Sequence[Searcher]) -> None:
    """Raise ConfigError naming the first index whose scores cannot be merged with the
    first one's (another model, dimension count, or kind of score)."""
    if not searchers:
        raise ConfigError("searchers", [], "no index to search")
    first = searchers[0]
    for s in searchers[1:]:
        if s.score_kind != first.score_kind:
            raise ConfigError(
                "index",
                s.name,
                f"scores of {s.score_kind} cannot be merged with {first.name}'s "
                f"{first.score_kind}; search it on its own",
            )


def common_mode(searchers: Sequence[Searcher], mode: str | None) -> str:
    """The mode a text query searches ``searchers`` in: ``mode`` checked against each of
    them, or by default ``hybrid`` when every one has a lexical index, else ``dense``."""
    if mode is None:
        return "hybrid" if all(s.lexical is not None for s in searchers) else "dense"
    for s in searchers:
        s.resolve_mode(mode)
    return mode


def embed_for(
    searchers: Sequence[Searcher],
    query: str | None = None,
    *,
    image: ImageInput | bytes | str | os.PathLike | None = None,
) -> list[np.ndarray]:
    """The (1, width) query vector for each searcher; each distinct (endpoint,
    dimensions, encoding) embeds the query once."""
    check_one_query(query, image, None)
    cache: dict[tuple, np.ndarray] = {}
    out = []
    for s in searchers:
        key = (id(s.embedder()), s.dimensions, s.query_encoding)
        if key not in cache and query is not None:
            cache[key] = s.embed_texts([query])
        elif key not in cache:
            cache[key] = s.embed_images([image])
        out.append(cache[key])
    return out


def search_all(
    searchers: Sequence[Searcher],
    query: str | None = None,
    *,
    image: ImageInput | bytes | str | os.PathLike | None = None,
    vector: np.ndarray | Sequence[float] | None = None,
    k: int = 10,
    filter: Filter = None,
    mode: str | None = None,
) -> list[Hit]:
    """One query against several index folders, hits merged by score.

    A text query is searched in ``mode`` (``common_mode``); a hybrid one with one fusion
    for every folder (``corpusbeam.retrieval.fusion.common_fusion``), whose fused scores
    merge across folders.

    Scores are comparable only between folders with the same ``score_kind`` (model,
    dimensions, cosine or hamming); otherwise ConfigError names the first folder that
    differs (``check_mergeable``). The query is embedded once per distinct endpoint,
    dimensions and encoding (``embed_for``).
    """
    check_one_query(query, image, vector)
    check_mergeable(searchers)
    if query is not None:
        mode = common_mode(searchers, mode)
        fusion = common_fusion(searchers, mode)  # one fusion, so fused scores merge
        vectors = [None] * len(searchers) if mode == "lexical" else embed_for(searchers, query)
        lists = [
            s.search_texts([query], k, filter=filter, mode=mode, vectors=xq, fusion=fusion)[0]
            for s, xq in zip(searchers, vectors, strict=True)
        ]
        return merge_hits(lists, k)
    if mode is not None and check_mode(mode) != "dense":
        raise ConfigError("mode", mode, "image and vector queries are searched dense only")
    if vector is not None:
        vectors = [np.asarray(vector)] * len(searchers)
    else:
        vectors = embed_for(searchers, query, image=image)
    lists = [
        s.search_vectors(xq, k, filter=filter)[0] for s, xq in zip(searchers, vectors, strict=True)
    ]
    return merge_hits(lists, k)
