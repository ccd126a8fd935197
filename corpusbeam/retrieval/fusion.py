"""How a hybrid search fuses its dense and lexical rankings, and where a tuned choice is kept.

    from corpusbeam.retrieval.fusion import Fusion

    Fusion(method="convex", weights={"dense": 0.3, "lexical": 0.7})
    Fusion(method="rrf", rrf_k=60)

Two methods:

- ``convex``: a convex combination of per-query normalised scores (Bruch, Gai and Ingber,
  "An Analysis of Fusion Functions for Hybrid Retrieval", TOIS 2023). Each ranking's
  scores are min-max normalised over its own candidates (``HYBRID_DEPTH`` of them: its
  best becomes 1, its last 0; a ranking whose candidates all score the same gives them
  1), and a chunk's score is ``sum over rankings m of weight_m * normalised_m``. A chunk
  missing from one ranking scored below that ranking's last candidate, so it gets that
  ranking's floor, 0.
- ``rrf``: Reciprocal Rank Fusion, ``sum over rankings m of weight_m / (rrf_k + rank_m)``
  (``corpusbeam.retrieval.hybrid.rrf``).

Ties go to the better best rank, then the smaller id, for both.

``corpusbeam evaluate DIR --queries Q --qrels R --tune`` chooses the method and weights
that maximise nDCG@10 on the labelled queries (``corpusbeam.retrieval.tuning``) and writes
them to ``DIR/fusion.json`` (``FUSION_FILE``): at the output's root beside ``CURRENT``, so
it is kept across versions (for an ``s3://`` or ``gs://`` output, the object
``fusion.json`` under it). ``Searcher`` reads it when it opens a folder; a folder without
one is searched with ``DEFAULT_FUSION``. Every answer says which fusion answered:
``Fusion.describe()`` is ``{"method", "weights", "tuned"}`` (and ``rrf_k`` for RRF).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.retrieval.hybrid import RRF_K, check_weights, rrf
from indexes.storage.objectstore import is_url, open_store

__all__ = [
    "DEFAULT_FUSION",
    "FUSION_FILE",
    "METHODS",
    "Fusion",
    "common_fusion",
    "convex",
    "parse_weights",
    "read_fusion",
    "resolve_fusion",
    "write_fusion",
]

METHODS = ("rrf", "convex")
FUSION_FILE = "fusion.json"

Ranking = tuple[Sequence[int], Sequence[float]]  # ids best first (negative: padding), scores
Fused = list[tuple[int, float, dict[str, int]]]  # (id, score, {ranking: rank}), best first


@dataclass(frozen=True, kw_only=True)
class Fusion:
    """One way of fusing the dense and lexical rankings: ``method`` (``rrf`` or
    ``convex``), a weight a ranking, ``rrf_k`` (RRF only), and whether it was ``tuned`` on
    labelled queries (``evaluate --tune``) or is a default or a request's choice."""

    method: str = "convex"
    weights: dict[str, float] = field(default_factory=lambda: {"dense": 1.0, "lexical": 1.0})
    rrf_k: float = RRF_K
    tuned: bool = False

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError("fusion", self.method, f"use one of {', '.join(METHODS)}")
        object.__setattr__(self, "weights", check_weights(self.weights))
        if not sum(self.weights.values()) > 0:
            raise ConfigError("weights", self.weights, "at least one weight must be > 0")
        k = self.rrf_k
        if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
            raise ConfigError("rrf_k", k, "must be a number > 0")

    def fuse(self, rankings: Mapping[str, Ranking], k: int) -> Fused:
        """The ``k`` best ``(id, score, {name: rank})`` of ``rankings`` (name -> (ids,
        scores), best first), best first."""
        if self.method == "rrf":
            ids = {name: ranked for name, (ranked, _) in rankings.items()}
            return rrf(ids, k, rrf_k=self.rrf_k, weights=self.weights)
        return convex(rankings, k, weights=self.weights)

    def describe(self) -> dict[str, Any]:
        """What answered, as responses show it: ``{"method", "weights", "tuned"}``, plus
        ``"rrf_k"`` for RRF."""
        out: dict[str, Any] = {
            "method": self.method,
            "weights": dict(self.weights),
            "tuned": self.tuned,
        }
        if self.method == "rrf":
            out["rrf_k"] = self.rrf_k
        return out

    def label(self) -> str:
        """One line for people: ``convex (dense 0.3, lexical 0.7), tuned``."""
        w = ", ".join(f"{n} {v:g}" for n, v in self.weights.items())
        k = f", k {self.rrf_k:g}" if self.method == "rrf" else ""
        return f"{self.method} ({w}{k}), {'tuned' if self.tuned else 'untuned'}"


# Chosen on the labelled sets of benchmarks/fusion.py (keyword spans, section headings,
# docstring summaries; MiniLM): a dense weight from 0.1 to 0.4 stays within 0.02 nDCG@10
# of the better single mode on each (0.5 falls 0.06 below lexical on the spans); 0.3 is
# 0.002 below it on the spans and 0.03 above it on the other two.
DEFAULT_CONVEX = Fusion(method="convex", weights={"dense": 0.3, "lexical": 0.7})
DEFAULT_FUSION = DEFAULT_CONVEX


def _minmax(scores: Sequence[float]) -> list[float]:
    lo, hi = min(scores), max(scores)
    if not hi > lo:
        return [1.0] * len(scores)
    return [(s - lo) / (hi - lo) for s in scores]


def convex(rankings: Mapping[str, Ranking], k: int, *, weights: Mapping[str, float]) -> Fused:
    """Convex combination of min-max normalised scores (see the module docstring):
    ``rankings`` name -> (ids, scores), best first; negative ids are padding. A ranking's
    repeated id counts at its first place."""
    fused: dict[int, float] = {}
    ranks: dict[int, dict[str, int]] = {}
    for name, (ids, scores) in rankings.items():
        if len(ids) != len(scores):
            raise ConfigError(f"rankings.{name}", len(scores), f"expected {len(ids)} scores")
        seen: dict[int, float] = {}
        for raw, score in zip(ids, scores, strict=True):
            i = int(raw)
            if i >= 0 and i not in seen:
                seen[i] = float(score)
        if not seen:
            continue
        weight = weights.get(name, 0.0)
        for rank, (i, norm) in enumerate(zip(seen, _minmax(list(seen.values())), strict=True), 1):
            fused[i] = fused.get(i, 0.0) + weight * norm
            ranks.setdefault(i, {})[name] = rank
    order = sorted(fused, key=lambda i: (-fused[i], min(ranks[i].values()), i))
    return [(i, fused[i], ranks[i]) for i in order[:k]]


def common_fusion(searchers: Sequence, mode: str, options: Mapping | None = None) -> Fusion | None:
    """The one fusion a query in ``mode`` over ``searchers`` (``Searcher``) uses, None
    unless hybrid. Each resolves ``options`` (``fusion_for`` keywords) against its folder's
    fusion; folders tuned apart get ``DEFAULT_FUSION`` with the options, so one fusion
    answers (and their fused scores merge) and the answer names it. ConfigError when
    ``options`` are given to a search that is not hybrid."""
    options = dict(options or {})
    if mode != "hybrid":
        given = [k for k, v in options.items() if v is not None]
        if given:
            raise ConfigError("fusion", options[given[0]], f"applies to hybrid, not {mode}")
        return None
    found = [s.fusion_for(**options) for s in searchers]
    if all(f == found[0] for f in found):
        return found[0]
    return resolve_fusion(DEFAULT_FUSION, **options)


def parse_weights(text: str | None) -> dict[str, float] | None:
    """``dense=0.3,lexical=0.7`` (the command line's ``--weights``) as a dict."""
    if text is None:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, eq, value = part.strip().partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            raise ConfigError("--weights", text, "expected dense=W,lexical=W") from None
        if not eq:
            raise ConfigError("--weights", text, "expected dense=W,lexical=W")
    return check_weights(out)


def resolve_fusion(
    base: Fusion,
    fusion: Fusion | str | None = None,
    weights: Mapping[str, float] | None = None,
    rrf_k: float | None = None,
) -> Fusion:
    """The fusion a query uses: ``base`` (the folder's) unless the query names a method
    (``fusion``), ``weights`` or ``rrf_k``. A method other than ``base``'s starts from that
    method's defaults; anything the query changes makes the result untuned."""
    if isinstance(fusion, Fusion):
        out = fusion
    elif fusion is None or fusion == base.method:
        out = base
    elif fusion == "convex":
        out = DEFAULT_CONVEX
    elif fusion == "rrf":
        out = Fusion(method="rrf")
    else:
        raise ConfigError("fusion", fusion, f"use one of {', '.join(METHODS)}")
    changes: dict[str, Any] = {}
    if weights is not None:
        changes["weights"] = check_weights(weights)
    if rrf_k is not None:
        changes["rrf_k"] = rrf_k
    if changes:
        out = replace(out, **changes)
    if out.tuned and out != base:
        out = replace(out, tuned=False)
    return out


def _from_json(data: bytes, where: str) -> Fusion:
    try:
        doc = json.loads(data)
        return Fusion(
            method=doc["method"],
            weights=doc["weights"],
            rrf_k=doc.get("rrf_k", RRF_K),
            tuned=True,
        )
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise IndexFolderError(f"{where}: not a fusion choice ({exc})") from None


def read_fusion(root: str | os.PathLike) -> Fusion | None:
    """The fusion stored at ``root`` (an output directory, an index folder, or an
    ``s3://``/``gs://`` output), or None when none was tuned there."""
    if is_url(root):
        url = str(root).rstrip("/")
        data, _ = open_store(url).get(FUSION_FILE)
        return None if data is None else _from_json(data, f"{url}/{FUSION_FILE}")
    path = Path(root) / FUSION_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexFolderError(f"{path}: cannot be read ({exc.strerror})") from None
    return _from_json(data, str(path))


def write_fusion(root: str | os.PathLike, fusion: Fusion, details: Mapping[str, Any]) -> str:
    """Store ``fusion`` (tuned) with ``details`` (what it was measured on) at ``root``;
    returns where. A local file is replaced atomically."""
    doc = {**fusion.describe(), "rrf_k": fusion.rrf_k, "tuned": True, **details}
    data = (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()
    if is_url(root):
        url = str(root).rstrip("/")
        open_store(url).put(FUSION_FILE, data)
        return f"{url}/{FUSION_FILE}"
    path = Path(root) / FUSION_FILE
    tmp = path.with_name(f".{FUSION_FILE}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return str(path)
