"""Rows of a 2-D ``.npy`` file read on demand with ``pread``: nothing is mapped.

A compressed index keeps its full vectors on disk and rescores a few hundred candidates a
query. Memory-mapping the file would let the kernel map far more than those rows (large
page-cache folios, fault-around): the process's resident memory would grow towards the
file's size. Reading exactly the rows asked for keeps it at the index alone; the page
cache still serves repeated rows, and the kernel reclaims it under pressure. An open file
descriptor also keeps a served version's rows readable after its folder is deleted.
"""

from __future__ import annotations

import contextlib
import os
import threading

import numpy as np

from corpusbeam.errors import IndexFolderError

__all__ = ["RowFile"]


class RowFile:
    """``rows[order]`` for sorted unique row numbers, like an array's fancy indexing;
    consecutive rows are read in one call. Thread-safe (``pread`` moves no offset)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = os.fspath(path)
        try:
            with open(self.path, "rb") as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                self.offset = f.tell()
        except (OSError, ValueError) as exc:
            raise IndexFolderError(f"{self.path}: not a readable .npy file ({exc})") from None
        if fortran or len(shape) != 2 or dtype.hasobject:
            raise IndexFolderError(f"{self.path}: expected a C-ordered 2-D numeric array")
        self.shape: tuple[int, int] = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 2
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        self._fd = os.open(self.path, os.O_RDONLY)
        self._lock = threading.Lock()

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.shape[0], self.shape[1]), dtype=self.dtype)
        if rows.size == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.shape[0]:
            raise IndexError(f"row outside 0..{self.shape[0] - 1} of {self.path}")
        buf = memoryview(out.view(np.uint8).reshape(-1))
        # Runs of consecutive rows: one read each.
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        starts = np.concatenate(([0], breaks))
        ends = np.concatenate((breaks, [rows.shape[0]]))
        for s, e in zip(starts.tolist(), ends.tolist(), strict=True):
            want = (e - s) * self.row_bytes
            at = self.offset + int(rows[s]) * self.row_bytes
            got = os.preadv(self._fd, [buf[s * self.row_bytes : e * self.row_bytes]], at)
            if got != want:
                raise IndexFolderError(f"{self.path}: short read at row {int(rows[s])}")
        return out

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __del__(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            self.close()
