"""BuildConfig: how an index folder is built (index choice, shards, tuning, rescoring), and
the defaults the command line shows. Loads no FAISS until threads are applied, so that
``corpusbeam index --help`` starts at once."""

from __future__ import annotations

from dataclasses import dataclass

from corpusbeam.errors import ConfigError

__all__ = ["DEFAULT_MEMORY_BUDGET", "DEFAULT_TRAIN_PER_CENTROID", "AutoLimits", "BuildConfig"]

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes
DEFAULT_TRAIN_PER_CENTROID = 64  # training vectors per IVF centroid, within [30, 256]


@dataclass(frozen=True)
class AutoLimits:
    """The most vectors ``auto`` gives an exact flat index (``flat``) and a graph index
    (``graph``), for every encoding; None keeps the table's defaults (flat: 10,000 float,
    100,000 int8, 1,000,000 bit; graph: 100,000 float, 5,000,000 bit). 0 skips that step.
    int8 has no graph step."""

    flat: int | None = None
    graph: int | None = None

    def __post_init__(self) -> None:
        for name in ("flat", "graph"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or value < 0):
                raise ConfigError(f"{name}_max", value, "must be a count >= 0")

    def flat_max(self, default: int) -> int:
        return default if self.flat is None else self.flat

    def graph_max(self, default: int) -> int:
        return default if self.graph is None else self.graph


@dataclass(frozen=True, kw_only=True)
class BuildConfig:
    """How to build: index choice, pieces, tuning and rescoring.

    ``shards`` splits the add into that many pieces built from one trained index;
    ``merge`` is ``memory`` (one index), ``ondisk`` (IVF lists in a file beside the index,
    memory-mapped) or ``none`` (keep the shards, search them together).
    ``eval_queries`` held-out queries measure recall@``k`` against exact search;
    ``rescore_factor`` candidates a result are rescored when rescoring vectors are given
    (default 4 for int8 indexes, 20 for binary ones: bits lose more; on MiniLM
    embeddings 10 candidates a result kept 0.948 of exact float recall@10, 20 kept 0.977).
    ``lexical`` also builds a BM25 index over the chunks' text (``indexes.lexical.index``).
    """

    memory_budget: int = DEFAULT_MEMORY_BUDGET
    factory: str | None = None
    train_per_centroid: int = DEFAULT_TRAIN_PER_CENTROID
    seed: int = 0
    shards: int = 1
    merge: str = "memory"
    latency_budget_ms: float = 10.0
    target_recall: float = 0.99
    eval_queries: int = 200
    k: int = 10
    rescore_factor: int | None = None
    threads: int | None = None
    lexical: bool = True

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ConfigError("shards", self.shards, "must be >= 1")
        if self.merge not in ("memory", "ondisk", "none"):
            raise ConfigError("merge", self.merge, "must be memory, ondisk or none")
        if self.eval_queries < 0:
            raise ConfigError("eval_queries", self.eval_queries, "must be >= 0")
        if self.k < 1:
            raise ConfigError("k", self.k, "must be >= 1")
        if self.rescore_factor is not None and self.rescore_factor < 1:
            raise ConfigError("rescore_factor", self.rescore_factor, "must be >= 1")
        if self.latency_budget_ms <= 0:
            raise ConfigError("latency_budget_ms", self.latency_budget_ms, "must be positive")
        if self.threads is not None and self.threads < 1:
            raise ConfigError("threads", self.threads, "must be >= 1")

    def apply_threads(self) -> None:
        """Set FAISS's OpenMP thread count when ``threads`` is given."""
        if self.threads:
            import faiss  # here, not at the top: the config loads with the command line

            faiss.omp_set_num_threads(self.threads)
