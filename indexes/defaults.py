"""Defaults of index building that the command line shows: plain numbers, no imports, so
that ``corpusbeam index --help`` loads no FAISS."""

__all__ = ["DEFAULT_MEMORY_BUDGET", "DEFAULT_TRAIN_PER_CENTROID"]

DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes
DEFAULT_TRAIN_PER_CENTROID = 64  # training vectors per IVF centroid, within [30, 256]
