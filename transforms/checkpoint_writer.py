"""Persisting an answered request as a checkpoint, off the client's thread.

``EmbedFn`` (``transforms.embed_worker``) submits each request's worth of a batch on its
own when checkpoints are on and calls ``persist`` from the request future's callback, on
the client's event-loop thread: the vectors are derived as the index stores them and the
write (``transforms.checkpoints.write_batch``) goes to the process's writer threads, so
neither the client nor the Beam thread waits on a file system, and a run killed right
after an answer has usually persisted it. Answers that wait for a writer are written
together, as one batch (``_drain``).
"""

from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor

from corpusbeam.inference.derive import EncodingPlan, derive_vectors
from transforms.checkpoints import write_batch
from transforms.embed_outputs import embedded_from

__all__ = ["persist"]

_WRITER: list[ThreadPoolExecutor] = []
# Writes at once a process: an object store's put of a small file takes a few round trips
# (Beam's S3 writer: a multipart upload), so one thread falls behind the endpoint.
WRITERS = 2


def _writer() -> ThreadPoolExecutor:
    if not _WRITER:
        _WRITER.append(ThreadPoolExecutor(WRITERS, thread_name_prefix="corpusbeam-checkpoints"))
    return _WRITER[0]


def persist(
    location: str, items: list, future, encodings: EncodingPlan, modality: str
) -> Future | None:
    """Queue the write of an answered request's vectors (its failed inputs left out);
    the write's future, or None when there is nothing to write."""
    if future.cancelled() or future.exception() is not None:
        return None
    result = future.result()
    vectors, rescore = derive_vectors(result.vectors, encodings.index, encodings.wire)
    done = [
        embedded_from(item, vectors[i], modality, rescore=None if rescore is None else rescore[i])
        for i, item in enumerate(items)
        if i not in result.failures
    ]
    if not done:
        return None
    written: Future = Future()
    with _LOCK:
        _PENDING.setdefault(location, []).append((done, written))
    _writer().submit(_drain, location)
    return written


_PENDING: dict[str, list[tuple[list, Future]]] = {}  # answers not yet taken by a writer
_LOCK = threading.Lock()


def _drain(location: str) -> None:
    """Write every answer waiting for ``location`` as one batch: when the store is slower
    than the endpoint, answers queue up and each write takes all of them, so the writes
    keep pace (fewer, larger files) instead of falling behind."""
    with _LOCK:
        waiting = _PENDING.pop(location, [])
    if not waiting:
        return
    try:
        write_batch(location, [e for done, _ in waiting for e in done])
    except Exception as exc:
        for _, written in waiting:
            written.set_exception(exc)
        return
    for _, written in waiting:
        written.set_result(None)
