"""FAISS indexes as bytes and as files.

``serialize_index`` / ``deserialize_index`` use FAISS's own format (no pickle);
``write_index`` / ``read_index`` write and read an index file, memory-mapped where the
index type allows it, or with its inverted lists on disk in ``<index>.ivfdata`` beside it
(``ONDISK_SUFFIX``, what ``merge_ondisk`` writes). FAISS's errors come out as
``IndexFolderError``.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import IndexFolderError
from indexes.ann.spec import family_of

__all__ = [
    "ONDISK_SUFFIX",
    "deserialize_index",
    "read_index",
    "serialize_index",
    "write_index",
]

# The inverted lists file of an index merged on disk, named after the index file.
ONDISK_SUFFIX = ".ivfdata"


@contextlib.contextmanager
def _quiet_stdout(*, drop: bool = False) -> Iterator[None]:
    """Keep FAISS's C-level notices (on-disk lists resized or relocated) off stdout, where
    they would corrupt a command's JSON output; they go to stderr instead, or nowhere
    (``drop``: the relocation notice every reader of an on-disk index would print)."""
    sys.stdout.flush()
    saved = os.dup(1)
    sink = os.open(os.devnull, os.O_WRONLY) if drop else 2
    try:
        os.dup2(sink, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        if drop:
            os.close(sink)


def serialize_index(index) -> bytes:
    """The index as bytes (FAISS's own format; no pickle)."""
    if isinstance(index, faiss.IndexBinary):
        return faiss.serialize_index_binary(index).tobytes()
    return faiss.serialize_index(index).tobytes()


def deserialize_index(data: bytes, encoding: str):
    """Inverse of ``serialize_index``."""
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        if family_of(encoding) == "binary":
            return faiss.deserialize_index_binary(buf)
        return faiss.deserialize_index(buf)
    except RuntimeError as exc:
        raise IndexFolderError(f"cannot read a {encoding} index: {_last_line(exc)}") from None


def _last_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[-1][:200] if text else type(exc).__name__


def write_index(index, path: str | os.PathLike) -> None:
    """Write an index file (binary or float)."""
    path = os.fspath(path)
    if isinstance(index, faiss.IndexBinary):
        faiss.write_index_binary(index, path)
    else:
        faiss.write_index(index, path)


def read_index(path: str | os.PathLike, encoding: str, *, mmap: bool = False):
    """Read an index file; ``mmap`` maps it instead of reading it into memory.

    An IVF index merged on disk (``merge_ondisk``) keeps its inverted lists in
    ``<path>.ivfdata`` beside the index file: ``OnDiskInvertedLists`` maps that file itself,
    read-only, whatever ``mmap`` says, and only the coarse quantizer is read into memory.
    FAISS's ``IO_FLAG_MMAP`` must not be passed for such an index: it includes
    ``IO_FLAG_SKIP_IVF_DATA``, which skips that mapping, and the first search then reads
    through a null pointer (a segfault). Other IVF lists are mapped from the index file
    itself under ``mmap``; flat and graph indexes are read whole either way.
    """
    path = os.fspath(path)
    if not Path(path).is_file():
        raise IndexFolderError(f"index file missing: {path}")
    try:
        if family_of(encoding) == "binary":
            index = faiss.read_index_binary(path, faiss.IO_FLAG_MMAP if mmap else 0)
        elif Path(path + ONDISK_SUFFIX).is_file():
            with _quiet_stdout(drop=True):
                index = faiss.read_index(
                    path, faiss.IO_FLAG_ONDISK_SAME_DIR | faiss.IO_FLAG_READ_ONLY
                )
        else:
            flags = faiss.IO_FLAG_MMAP if mmap else 0
            index = faiss.read_index(path, faiss.IO_FLAG_ONDISK_SAME_DIR | flags)
    except RuntimeError as exc:
        raise IndexFolderError(f"cannot read index {path}: {_last_line(exc)}") from None
    if _unmapped_lists(index):
        raise IndexFolderError(
            f"cannot read index {path}: its inverted lists are on disk but were not mapped "
            f"(is {Path(path).name}{ONDISK_SUFFIX} beside it?)"
        )
    return index


def _unmapped_lists(index) -> bool:
    """Whether ``index`` has non-empty on-disk inverted lists that are not mapped: searching
    it would read through a null pointer."""
    if isinstance(index, faiss.IndexBinary) or not _is_ivf(index):
        return False
    lists = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)
    return isinstance(lists, faiss.OnDiskInvertedLists) and lists.totsize > 0 and lists.ptr is None


def _is_ivf(index) -> bool:
    if isinstance(index, faiss.IndexBinaryIVF):
        return True
    try:
        faiss.extract_index_ivf(index)
    except (RuntimeError, AttributeError, TypeError):
        return False
    return True
