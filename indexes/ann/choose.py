"""Which FAISS index to build, from the vector count, dimensions, encoding and a memory budget.

Like autofaiss, but for every encoding (``N`` vectors, ``K`` inverted lists):

=================  ====================================================================
encoding           index, first that applies
=================  ====================================================================
float, base64      ``IDMap2,Flat`` (N <= 10k) -> ``IDMap2,HNSW32`` (N <= 100k) ->
                   ``IVF{K},Flat`` -> ``IVF{K},SQ8`` -> ``IVF{K},PQ{m}x4fs`` (the largest
                   m that fits) rescored from the full vectors on disk, as the budget
                   demands; inner product on L2-normalised vectors. SQ8 (4x smaller, recall
                   close to IVF-Flat) is a step autofaiss lacks between IVF-Flat and IVF-PQ.
                   Below it, autofaiss trains OPQ and 8-bit PQ for minutes and returns two
                   thirds of the true neighbours; 4-bit fast-scan codes train in seconds and
                   only have to find candidates: ``factor x k`` of them are rescored exactly
                   against each part's ``rescore.npy``, read a row at a time
                   (indexes.storage.npy_rows).
int8, uint8        ``IDMap2,SQ8_direct_signed`` (N <= 100k) -> ``IVF{K},SQ8_direct_signed``;
                   the bytes are stored exactly (uint8 as its exact int8 twin, v - 128)
binary, ubinary    ``IDMap,BFlat`` (N <= 1M) -> ``IDMap2,BHNSW32`` (N <= 5M) ->
                   ``BIVF{K}`` over the packed bits, Hamming distance
=================  ====================================================================

K is about 4 * sqrt(N) rounded to a power of two up to 1M vectors, 2^16 up to 10M, 2^18
beyond, and never more than N / 30 (each centroid needs 30 training vectors). Coarse
quantizers with more than 4096 lists are HNSW32 graphs.

Why uint8 is stored as int8: ``SQ8_direct`` would keep the 0..255 values exactly, but an
inner product on shifted values adds ``128 * sum(x)`` per vector, which changes the
ranking, biases IVF training and HNSW graphs. ``v - 128`` is a bijection, so
``SQ8_direct_signed`` on it keeps the same bytes' information with the right metric.

``AutoLimits`` lowers the counts past which a flat index gives way to a graph, and a graph
to IVF (``--flat-max``, ``--graph-max``): a small corpus then gets the index a large one
would, which is how the tests reach every family without building millions of vectors.

A user can force any factory string; one that does not suit the encoding (a float
index for bit vectors, ``SQ8_direct`` for int8 ...) raises ConfigError naming
``factory``. Flat and graph indexes are wrapped in ``IDMap2`` (binary
flat in ``IDMap``: its reverse map would cost 40 bytes a vector) so ids are explicit.

This module decides; what it returns, an ``IndexSpec``, and the empty index a spec makes
(``make_index``) live in ``indexes.ann.spec``, which everything downstream imports.
"""

from __future__ import annotations

import math
import re

import faiss

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec
from indexes.ann.spec import IndexSpec, family_of, has_ivf, make_index
from indexes.config import DEFAULT_MEMORY_BUDGET, DEFAULT_TRAIN_PER_CENTROID, AutoLimits

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "DEFAULT_TRAIN_PER_CENTROID",
    "AutoLimits",
    "choose_index",
]


_FLAT_MAX = 10_000
_HNSW_MAX = 100_000
_SQ_FLAT_MAX = 100_000
_BFLAT_MAX = 1_000_000
_BHNSW_MAX = 5_000_000
_PQ_TRAIN = 256 * 64  # PQ codebooks: 256 centroids a sub-quantizer, 64 vectors each

_INT8_RE = re.compile(
    r"^(?P<idmap>IDMap2?,)?(?:(?P<ivf>IVF\d+(?:_HNSW\d+)?),|(?P<hnsw>HNSW\d+)_)?"
    r"SQ8_direct(?P<signed>_signed)?$"
)


def _nlist(n: int) -> int:
    if n <= 1_000_000:
        k = 2 ** round(math.log2(max(4 * math.sqrt(max(n, 1)), 1)))
    elif n <= 10_000_000:
        k = 1 << 16
    else:
        k = 1 << 18
    while k > 1 and k * 30 > n:
        k //= 2
    return max(k, 1)


def _coarse(k: int) -> str:
    return f"IVF{k}_HNSW32" if k > 4096 else f"IVF{k}"


def _train_size(n: int, k: int, per_centroid: int) -> int:
    return min(n, k * per_centroid)


def choose_index(
    n: int,
    d: int,
    encoding: str,
    *,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    factory: str | None = None,
    train_per_centroid: int = DEFAULT_TRAIN_PER_CENTROID,
    limits: AutoLimits | None = None,
) -> IndexSpec:
    """The index to build for ``n`` vectors of ``d`` dimensions in ``encoding``.

    ``factory`` forces a FAISS factory string (validated for the encoding);
    ``memory_budget`` (bytes) bounds the index's size in memory; ``limits`` lowers the
    counts at which ``auto`` moves from flat to graph to IVF.
    """
    codec.check_encoding(encoding)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError("n", n, "must be a positive number of vectors")
    if isinstance(d, bool) or not isinstance(d, int) or d < 1:
        raise ConfigError("dimensions", d, "must be a positive integer")
    codec.wire_width(encoding, d)
    if memory_budget <= 0:
        raise ConfigError("memory_budget", memory_budget, "must be a positive number of bytes")
    if not 30 <= train_per_centroid <= 256:
        raise ConfigError("train_per_centroid", train_per_centroid, "must be within [30, 256]")
    if factory is not None:
        return _forced(n, d, encoding, factory, train_per_centroid)
    family = family_of(encoding)
    lim = limits or AutoLimits()
    if family == "float":
        return _choose_float(n, d, encoding, memory_budget, train_per_centroid, lim)
    if family == "int8":
        return _choose_int8(n, d, encoding, memory_budget, train_per_centroid, lim)
    return _choose_binary(n, d, encoding, memory_budget, train_per_centroid, lim)


def _choose_float(
    n: int, d: int, encoding: str, budget: int, per: int, lim: AutoLimits
) -> IndexSpec:
    common = {"encoding": encoding, "dimensions": d, "count": n}
    flat = n * (4 * d + 48)
    if n <= lim.flat_max(_FLAT_MAX) and flat <= budget:
        return IndexSpec(factory="IDMap2,Flat", estimated_bytes=flat, **common)
    hnsw = n * (4 * d + 8 * 32 * 2 + 48)
    if n <= lim.graph_max(_HNSW_MAX) and hnsw <= budget:
        return IndexSpec(
            factory="IDMap2,HNSW32", search_param="efSearch", estimated_bytes=hnsw, **common
        )
    k = _nlist(n)
    ivf = {"nlist": k, "search_param": "nprobe", **common}
    quant = k * d * 4 * (2 if k > 4096 else 1)
    train = _train_size(n, k, per)
    ivf_flat = n * (4 * d + 8) + quant
    if ivf_flat <= budget:
        return IndexSpec(
            factory=f"{_coarse(k)},Flat", train_size=train, estimated_bytes=ivf_flat, **ivf
        )
    ivf_sq = n * (d + 8) + quant + 8 * d
    if ivf_sq <= budget:
        return IndexSpec(
            factory=f"{_coarse(k)},SQ8", train_size=train, estimated_bytes=ivf_sq, **ivf
        )
    # Below SQ8: 4-bit PQ codes scanned with SIMD (fast-scan), the largest that fits, whose
    # candidates are rescored against the full vectors kept on disk. The budget bounds what
    # stays resident (codes, ids, centroids and the rescoring id map), not the disk.
    for m in _pq_sizes(d):
        size = n * (m // 2 + 8 + 8) + quant
        if size <= budget:
            return IndexSpec(
                factory=f"{_coarse(k)},PQ{m}x4fs",
                train_size=train,
                estimated_bytes=size,
                rescore=True,
                **ivf,
            )
    raise ConfigError(
        "memory_budget", budget, f"{n} vectors of {d} dimensions do not fit even as IVF-PQ4x4"
    )


def _pq_sizes(d: int) -> list[int]:
    """Sub-quantizer counts for 4-bit fast-scan PQ, largest first: even divisors of ``d``,
    at most one per two dimensions (2 bits a dimension: beyond it SQ8 fits anyway)."""
    return [m for m in range(d // 2, 3, -1) if d % m == 0 and m % 2 == 0]


def _choose_int8(
    n: int, d: int, encoding: str, budget: int, per: int, lim: AutoLimits
) -> IndexSpec:
    common = {"encoding": encoding, "dimensions": d, "count": n}
    flat = n * (d + 48)
    if n <= lim.flat_max(_SQ_FLAT_MAX) and flat <= budget:
        return IndexSpec(factory="IDMap2,SQ8_direct_signed", estimated_bytes=flat, **common)
    k = _nlist(n)
    size = n * (d + 8) + k * d * 4 * (2 if k > 4096 else 1)
    if size > budget:
        raise ConfigError(
            "memory_budget",
            budget,
            f"{encoding} indexes store {d} bytes a vector exactly: {n} vectors need about "
            f"{size} bytes (use a binary encoding, or float with IVF-PQ, for less)",
        )
    return IndexSpec(
        factory=f"{_coarse(k)},SQ8_direct_signed",
        nlist=k,
        search_param="nprobe",
        train_size=_train_size(n, k, per),
        estimated_bytes=size,
        **common,
    )


def _choose_binary(
    n: int, d: int, encoding: str, budget: int, per: int, lim: AutoLimits
) -> IndexSpec:
    common = {"encoding": encoding, "dimensions": d, "count": n}
    width = d // 8
    flat = n * (width + 8)
    if n <= lim.flat_max(_BFLAT_MAX) and flat <= budget:
        return IndexSpec(factory="IDMap,BFlat", estimated_bytes=flat, **common)
    hnsw = n * (width + 8 * 32 * 2 + 48)
    if n <= lim.graph_max(_BHNSW_MAX) and hnsw <= budget:
        return IndexSpec(
            factory="IDMap2,BHNSW32",
            search_param="efSearch",
            filterable=False,
            estimated_bytes=hnsw,
            **common,
        )
    k = _nlist(n)
    size = n * (width + 8) + k * width * (2 if k > 4096 else 1)
    if size > budget:
        raise ConfigError("memory_budget", budget, f"{n} bit vectors need about {size} bytes")
    return IndexSpec(
        factory=f"B{_coarse(k)}",
        nlist=k,
        search_param="nprobe",
        train_size=_train_size(n, k, per),
        filterable=False,
        estimated_bytes=size,
        **common,
    )


# ---------------------------------------------------------------- forced strings


def _bad(factory: str, reason: str) -> ConfigError:
    return ConfigError("factory", factory, reason)


def _forced(n: int, d: int, encoding: str, factory: str, per: int) -> IndexSpec:
    if not isinstance(factory, str) or not factory.strip():
        raise _bad(factory, "must be a non-empty FAISS factory string")
    factory = factory.strip()
    family = family_of(encoding)
    if family == "int8":
        m = _INT8_RE.match(factory)
        if not m:
            raise _bad(
                factory,
                f"{encoding} indexes must store the bytes exactly: use SQ8_direct_signed, "
                "IVF{K},SQ8_direct_signed or HNSW{M}_SQ8_direct_signed",
            )
        if not m.group("signed"):
            raise _bad(
                factory,
                "SQ8_direct stores 0..255 but inner products on shifted values rank wrongly; "
                f"{encoding} vectors are stored with SQ8_direct_signed",
            )
        if not m.group("ivf") and not m.group("idmap"):
            factory = "IDMap2," + factory
    elif family == "binary":
        if not (factory.startswith("B") or factory.startswith("IDMap")):
            raise _bad(
                factory,
                f"{encoding} vectors need a binary index (BFlat, BHNSW{{M}}, BIVF{{K}})",
            )
        if factory.startswith(("BFlat", "BHNSW")):
            factory = ("IDMap," if factory.startswith("BFlat") else "IDMap2,") + factory
    else:
        if factory.startswith("B") or "_direct" in factory:
            raise _bad(
                factory,
                f"{encoding} vectors need a float index (Flat, HNSW, IVF, PQ, SQ8 ...); "
                "binary and SQ8_direct indexes are for the bit and int8 encodings",
            )
    spec = IndexSpec(encoding=encoding, dimensions=d, count=n, factory=factory)
    index = make_index(spec)  # validates the string with FAISS itself
    if family != "binary" and not factory.startswith("IDMap") and not has_ivf(index):
        factory = "IDMap2," + factory
        index = make_index(IndexSpec(encoding=encoding, dimensions=d, count=n, factory=factory))
    return _describe(index, spec.__class__, n, d, encoding, factory, per)


def _describe(index, cls, n: int, d: int, encoding: str, factory: str, per: int) -> IndexSpec:
    family = family_of(encoding)
    nlist = 0
    search_param = None
    filterable = True
    inner = index
    if family == "binary":
        if isinstance(inner, faiss.IndexBinaryIDMap | faiss.IndexBinaryIDMap2):
            inner = faiss.downcast_IndexBinary(inner.index)
        if isinstance(inner, faiss.IndexBinaryIVF):
            nlist, search_param, filterable = inner.nlist, "nprobe", False
        elif isinstance(inner, faiss.IndexBinaryHNSW):
            search_param, filterable = "efSearch", False
        elif not isinstance(inner, faiss.IndexBinaryFlat):
            raise _bad(factory, "unsupported binary index type")
    elif has_ivf(index):
        nlist, search_param = faiss.extract_index_ivf(index).nlist, "nprobe"
    elif "HNSW" in factory:
        search_param = "efSearch"
    train = 0
    if nlist:
        if nlist * 30 > n:
            raise _bad(factory, f"{nlist} lists need at least {nlist * 30} vectors, got {n}")
        train = _train_size(n, nlist, per)
    if not index.is_trained:
        train = max(train, min(n, _PQ_TRAIN if "PQ" in factory else 0))
        if train == 0:
            train = min(n, 256 * 40)
    return cls(
        encoding=encoding,
        dimensions=d,
        count=n,
        factory=factory,
        train_size=train,
        nlist=nlist,
        search_param=search_param,
        filterable=filterable,
        # Product-quantised float codes lose too much to rank: rescore from the full vectors.
        rescore=family == "float" and "PQ" in factory,
    )
