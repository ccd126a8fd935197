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
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence

import faiss
import numpy as np

from indexes.memory import trim
from inference.errors import IndexFolderError

__all__ = ["merge_shards_ondisk"]

_ID_BYTES = np.dtype("int64").itemsize


def _lists(path: str, read: Callable[[str], object]):
    index = read(path)
    return index, faiss.extract_index_ivf(index).invlists


def _sizes(invlists, nlist: int) -> np.ndarray:
    return np.fromiter((invlists.list_size(i) for i in range(nlist)), dtype=np.int64, count=nlist)


def merge_shards_ondisk(
    trained,
    shard_paths: Sequence[str | os.PathLike],
    ivfdata: str | os.PathLike,
    *,
    read: Callable[[str], object] = faiss.read_index,
) -> int:
    """Fill the empty IVF index ``trained`` with the lists of the shard files (each a
    copy of it with vectors added), the lists going into the file ``ivfdata``. Returns the
    number of vectors. Ids are kept as the shards hold them."""
    ivf = faiss.extract_index_ivf(trained)
    if ivf.ntotal != 0:
        raise IndexFolderError("the on-disk merge needs the empty trained index")
    nlist, code_size = ivf.nlist, ivf.code_size
    paths = [os.fspath(p) for p in shard_paths]
    sizes = np.zeros((len(paths), nlist), dtype=np.int64)
    for s, path in enumerate(paths):
        index, invlists = _lists(path, read)
        if invlists.nlist != nlist or invlists.code_size != code_size:
            raise IndexFolderError(f"{path}: not a shard of this trained index")
        sizes[s] = _sizes(invlists, nlist)
        del index, invlists
        trim()
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
            index, invlists = _lists(path, read)
            for i in np.flatnonzero(sizes[s]):
                n = int(sizes[s, i])
                codes = faiss.rev_swig_ptr(invlists.get_codes(int(i)), n * code_size)
                ids = faiss.rev_swig_ptr(invlists.get_ids(int(i)), n)
                at = int(offsets[i])
                first = int(starts[s, i])
                os.pwrite(fd, codes, at + first * code_size)
                os.pwrite(fd, ids, at + int(totals[i]) * code_size + first * _ID_BYTES)
            del index, invlists
            trim()
    finally:
        os.close(fd)
    ntotal = int(totals.sum())
    ivf.replace_invlists(lists, True)
    lists.this.disown()
    trained.ntotal = ivf.ntotal = ntotal
    return ntotal
