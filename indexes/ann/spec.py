"""What to build: ``IndexSpec``, the encoding families, and the empty FAISS index a spec makes.

An ``IndexSpec`` names a FAISS factory string and what follows from it (training size, IVF
lists, the search knob, whether filters work inside the search, the size in memory,
rescoring). ``family_of`` groups the wire encodings into the three index families
(``float``, ``int8``, ``binary``); ``make_index`` builds a spec's empty, untrained index.
Which spec a corpus gets, and whether a forced factory string suits its encoding, is
decided in ``indexes.ann.choose``; this module only describes a spec and builds it, so
everything downstream (training, merging, serialization, search) needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss

from corpusbeam.errors import ConfigError
from corpusbeam.inference import codec

__all__ = ["IndexSpec", "family_of", "has_ivf", "make_index"]


def family_of(encoding: str) -> str:
    """``float`` for float/base64, ``int8`` for int8/uint8, ``binary`` for bit encodings."""
    codec.check_encoding(encoding)
    if encoding in codec.BIT_ENCODINGS:
        return "binary"
    return "int8" if encoding in ("int8", "uint8") else "float"


@dataclass(frozen=True, kw_only=True)
class IndexSpec:
    """What to build: the factory string and what follows from it.

    ``train_size`` is the number of vectors to train on (0: no training), ``nlist`` the
    IVF list count (0 for non-IVF), ``search_param`` the knob tuning turns (``nprobe``,
    ``efSearch`` or None), ``filterable`` whether an IDSelector works inside the search,
    ``estimated_bytes`` the index's size in memory once all N vectors are added (with what
    rescoring keeps resident); ``rescore`` whether the folder keeps the full float vectors
    on disk, memory-mapped, to rescore the compressed index's candidates.
    """

    encoding: str
    dimensions: int
    count: int
    factory: str
    train_size: int = 0
    nlist: int = 0
    search_param: str | None = None
    filterable: bool = True
    estimated_bytes: int = 0
    rescore: bool = False

    def __post_init__(self) -> None:
        codec.check_encoding(self.encoding)
        if self.dimensions <= 0:
            raise ConfigError("dimensions", self.dimensions, "must be positive")
        codec.wire_width(self.encoding, self.dimensions)
        if self.count < 0:
            raise ConfigError("count", self.count, "must be >= 0")
        if self.train_size < 0:
            raise ConfigError("train_size", self.train_size, "must be >= 0")
        if self.search_param not in (None, "nprobe", "efSearch"):
            raise ConfigError("search_param", self.search_param, "must be nprobe or efSearch")

    @property
    def family(self) -> str:
        return family_of(self.encoding)

    @property
    def metric(self) -> str:
        return "hamming" if self.family == "binary" else "inner_product"


def has_ivf(index: object) -> bool:
    """Whether ``index`` is, or wraps, an inverted-file index."""
    try:
        faiss.extract_index_ivf(index)
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True


def make_index(spec: IndexSpec):
    """An empty, untrained FAISS index for ``spec`` (IndexBinary for bit encodings)."""
    try:
        if spec.family == "binary":
            return faiss.index_binary_factory(spec.dimensions, spec.factory)
        index = faiss.index_factory(spec.dimensions, spec.factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as exc:
        msg = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown"
        raise ConfigError("factory", spec.factory, f"FAISS cannot build it ({msg[:200]})") from None
    if spec.family == "int8" and has_ivf(index):
        # The factory encodes residuals by default; direct codes must store the bytes.
        faiss.extract_index_ivf(index).by_residual = False
    return index
