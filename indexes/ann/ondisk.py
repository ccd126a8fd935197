"""IVF shards merged into inverted lists on disk, holding one shard in memory at a time.

FAISS's own ``faiss.contrib.ondisk.merge_ondisk`` loads every shard's lists at once and
copies them into the new lists file through its memory map: both count in the process's
resident memory, so a merge of N vectors holds about twice their codes (2.5 GiB at 1M
x 256 floats). Here the merged file gets the same layout (``OnDiskInvertedLists``: list
after list, each list's codes then its ids, in shard order) but is written with
``os.pwrite`` through the page cache, which is not the process's memory, reading one
shard at a time:

1. each shard's list sizes (the shard read, its sizes kept, the shard freed);
2. the lists file sized and laid out (``set_all_lists_sizes``: offsets from the sizes);
3. each shard again, its lists written at their place in each merged list.

The index written is what ``merge_ondisk`` writes: the trained index with the on-disk
lists, referring to the lists file by its path.

A shard is either a FAISS index file (a copy of the trained index with vectors added) or
a lists file (``shard_lists_bytes``: the lists alone, which is what the index job's
workers write). A FAISS shard carries a copy of the trained quantizer: 4 MiB at K =
4,096 and d = 256, 64 MiB at K = 2^16, once for every part; a lists file is the codes
and ids alone, and its sizes sit at its head, so step 1 reads a few KiB of it, not the
whole shard. Lists file layout (little-endian)::

    b"CBIVFLS1", nlist (int64), code_size (int64), sizes (int64 x nlist),
    codes (code_size bytes a vector, list after list), ids (int64, list after list)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import faiss
import numpy as np

from corpusbeam.errors import IndexFolderError
from indexes.memory import trim

__all__ = ["is_lists_file", "merge_shards_ondisk", "shard_lists_bytes"]

_ID_BYTES = np.dtype("int64").itemsize


_MAGIC = b"CBIVFLS1"
_HEAD = len(_MAGIC) + 2 * _ID_BYTES


def _sizes(invlists, nlist: int) -> np.ndarray:
    return np.fromiter((invlists.list_size(i) for i in range(nlist)), dtype=np.int64, count=nlist)


def shard_lists_bytes(index) -> bytes:
    """The inverted lists of the IVF index ``index`` as a lists file (module docstring):
    what the merge needs of a shard, without the trained quantizer."""
    invlists = faiss.extract_index_ivf(index).invlists
    nlist, code_size = invlists.nlist, invlists.code_size
    sizes = _sizes(invlists, nlist)
    codes, ids = [], []
    for i in np.flatnonzero(sizes):
        n = int(sizes[i])
        codes.append(faiss.rev_swig_ptr(invlists.get_codes(int(i)), n * code_size).copy())
        ids.append(faiss.rev_swig_ptr(invlists.get_ids(int(i)), n).copy())
    head = _MAGIC + np.array([nlist, code_size], dtype="<i8").tobytes()
    return b"".join(
        [
            head,
            sizes.astype("<i8").tobytes(),
            *(c.tobytes() for c in codes),
            *(np.asarray(x, dtype="<i8").tobytes() for x in ids),
        ]
    )


def is_lists_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a lists file (not a FAISS index file)."""
    with open(path, "rb") as f:
        return f.read(len(_MAGIC)) == _MAGIC


class _Shard:
    """One shard's list sizes and, once ``load``-ed, each list's codes and ids."""

    def __init__(self, path: str, read: Callable[[str], object]) -> None:
        self.path, self._read = path, read
        self.lists_file = is_lists_file(path)
        self._index = self._invlists = self._data = None
        if self.lists_file:
            with open(path, "rb") as f:
                head = f.read(_HEAD)
                self.nlist, self.code_size = (int(v) for v in np.frombuffer(head[8:], "<i8"))
                self.sizes = np.frombuffer(f.read(self.nlist * _ID_BYTES), "<i8").astype(np.int64)
            total = int(self.sizes.sum()) if self.sizes.size == self.nlist else -1
            expected = _HEAD + self.nlist * _ID_BYTES + total * (self.code_size + _ID_BYTES)
            if total < 0 or os.path.getsize(path) != expected:
                raise IndexFolderError(
                    f"{path}: a lists file of {os.path.getsize(path)} bytes where its head "
                    f"promises {expected}: cut short or damaged"
                )
        else:
            self.load()
            self.nlist, self.code_size = self._invlists.nlist, self._invlists.code_size
            self.sizes = _sizes(self._invlists, self.nlist)
        self._starts = np.cumsum(self.sizes) - self.sizes

    def load(self) -> None:
        """Read the shard's lists into memory (once)."""
        if self._data is not None or self._invlists is not None:
            return
        if self.lists_file:
            self._data = Path(self.path).read_bytes()
        else:
            self._index = self._read(self.path)
            self._invlists = faiss.extract_index_ivf(self._index).invlists

    def codes_and_ids(self, i: int) -> tuple[memoryview | np.ndarray, np.ndarray]:
        n = int(self.sizes[i])
        if not self.lists_file:
            codes = faiss.rev_swig_ptr(self._invlists.get_codes(i), n * self.code_size)
            return codes, faiss.rev_swig_ptr(self._invlists.get_ids(i), n)
        at = _HEAD + self.nlist * _ID_BYTES
        first = int(self._starts[i])
        start = at + first * self.code_size
        codes = memoryview(self._data)[start : start + n * self.code_size]
        ids_at = at + int(self.sizes.sum()) * self.code_size + first * _ID_BYTES
        return codes, memoryview(self._data)[ids_at : ids_at + n * _ID_BYTES]

    def free(self) -> None:
        self._index = self._invlists = self._data = None
        trim()


def merge_shards_ondisk(
    trained,
    shard_paths: Sequence[str | os.PathLike],
    ivfdata: str | os.PathLike,
    *,
    read: Callable[[str], object] = faiss.read_index,
) -> int:
    """Fill the empty IVF index ``trained`` with the lists of the shard files (each a
    copy of it with vectors added, or a lists file of one: ``shard_lists_bytes``), the
    lists going into the file ``ivfdata``; ``read`` reads a FAISS shard file. Returns the
    number of vectors. Ids are kept as the shards hold them."""
    ivf = faiss.extract_index_ivf(trained)
    if ivf.ntotal != 0:
        raise IndexFolderError("the on-disk merge needs the empty trained index")
    nlist, code_size = ivf.nlist, ivf.code_size
    paths = [os.fspath(p) for p in shard_paths]
    sizes = np.zeros((len(paths), nlist), dtype=np.int64)
    for s, path in enumerate(paths):
        shard = _Shard(path, read)
        if shard.nlist != nlist or shard.code_size != code_size:
            raise IndexFolderError(f"{path}: not a shard of this trained index")
        sizes[s] = shard.sizes
        shard.free()
    totals = sizes.sum(axis=0)
    entry = code_size + _ID_BYTES
    offsets = np.concatenate([[0], np.cumsum(totals * entry)[:-1]]).astype(np.int64)
    nbytes = int((totals * entry).sum())
    # Where each shard's piece of list l starts among that list's entries.
    starts = np.cumsum(sizes, axis=0) - sizes
    ivfdata = os.fspath(ivfdata)
    lists = faiss.OnDiskInvertedLists(nlist, code_size, ivfdata)
    lists.update_totsize(max(nbytes, 1))  # creates and maps the file: no page touched
    layout = totals.astype(np.uint64)  # kept alive while FAISS reads it
    lists.set_all_lists_sizes(faiss.swig_ptr(layout))
    fd = os.open(ivfdata, os.O_WRONLY)
    try:
        for s, path in enumerate(paths):
            shard = _Shard(path, read)
            shard.load()
            for i in np.flatnonzero(sizes[s]):
                codes, ids = shard.codes_and_ids(int(i))
                at = int(offsets[i])
                first = int(starts[s, i])
                os.pwrite(fd, codes, at + first * code_size)
                os.pwrite(fd, ids, at + int(totals[i]) * code_size + first * _ID_BYTES)
                del codes, ids
            shard.free()
    finally:
        os.close(fd)
    ntotal = int(totals.sum())
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    trained.ntotal = ivf.ntotal = ntotal
    return ntotal
