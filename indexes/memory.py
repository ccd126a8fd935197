"""Handing freed memory back to the operating system between the steps of a build.

Freed memory is not returned at once: Arrow's pool keeps blocks for reuse, and glibc keeps
freed heap pages (its mmap threshold grows after the first large free, so later large
buffers come from the heap too). A step that streams part after part would otherwise keep
the high-water mark of its largest step for the rest of the process. ``trim()`` releases
both; it costs a few milliseconds and is a no-op where glibc is not the allocator.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import pyarrow as pa

__all__ = ["resident", "trim"]

_STATUS = {"VmRSS": "rss", "RssAnon": "anonymous", "RssFile": "files", "VmHWM": "peak"}

_LIBC = None
try:
    _name = ctypes.util.find_library("c")
    _LIBC = ctypes.CDLL(_name) if _name else None
    if _LIBC is not None and not hasattr(_LIBC, "malloc_trim"):
        _LIBC = None
except OSError:  # pragma: no cover - no C library to load
    _LIBC = None


def trim() -> None:
    """Return freed Arrow and C heap memory to the operating system."""
    pa.default_memory_pool().release_unused()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def resident() -> str:
    """This process's resident memory, for a log line: ``rss 523 MiB (anonymous 300,
    files 223), peak 900 MiB`` (from /proc/self/status; empty where there is none)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return ""
    mib = {}
    for line in lines:
        key, _, value = line.partition(":")
        if key in _STATUS:
            mib[_STATUS[key]] = int(value.split()[0]) // 1024
    if len(mib) < len(_STATUS):
        return ""
    return (
        f"rss {mib['rss']} MiB (anonymous {mib['anonymous']}, files {mib['files']}), "
        f"peak {mib['peak']} MiB"
    )
