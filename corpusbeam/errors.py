"""corpusbeam's one exception hierarchy, rooted here and shared by every layer.

Every error corpusbeam raises on purpose is a ``CorpusbeamError``. Library exceptions
(httpx, json, faiss, pyarrow) are converted where they are caught, once, into one of
these, so a caller needs only ``except CorpusbeamError`` and a test can check that
nothing slips through unconverted.

    CorpusbeamError
    ├── ConfigError              a setting or argument is wrong (field, value, reason)
    │   └── OutputBusyError      another run holds the output (its lock or lease)
    ├── IndexFolderError         an index folder is missing, damaged or mismatched
    ├── JobError                 a pipeline run failed (the runner's reason, unwrapped)
    ├── CodecError               an embeddings payload cannot be encoded or decoded
    └── EmbeddingError           talking to an embeddings endpoint failed

``CodecError`` and the ``EmbeddingError`` tree belong to the wire protocol and live in
``corpusbeam.inference.errors``. This module imports nothing (the standard library included), so
every layer may raise these without loading anything.

Messages never contain credentials: the classes here are given none.
"""

from __future__ import annotations

__all__ = ["ConfigError", "CorpusbeamError", "IndexFolderError", "JobError", "OutputBusyError"]


class CorpusbeamError(Exception):
    """Root of every error corpusbeam raises on purpose."""


class ConfigError(CorpusbeamError, ValueError):
    """A setting or argument is wrong; the message names the field and the value."""

    def __init__(self, field: str, value: object, reason: str) -> None:
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"{field}={value!r}: {reason}")


class OutputBusyError(ConfigError):
    """Another run holds the output (a local folder's lock, an object store's live
    lease): this run changed nothing. The command line exits ``ExitCode.BUSY``, which a
    scheduler skips rather than alerts on."""


class IndexFolderError(CorpusbeamError):
    """An index folder is missing, damaged, or does not match what the caller expects."""


class JobError(CorpusbeamError):
    """A pipeline run failed; the message is the underlying reason, not the runner's
    wrapping. Nothing it was writing is served."""
