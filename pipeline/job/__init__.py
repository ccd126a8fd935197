"""The index job's entry point, free of Beam until a job runs.

``run_index_job(IndexJobConfig(...))`` is what ``corpusbeam index`` and
``from corpusbeam import run_index_job`` call; the job itself (``pipeline.index_job``) is
imported inside the call, so importing this package loads no Beam, numpy or pyarrow.
``IndexJobResult`` is defined here for the same reason; its exit statuses are
``corpusbeam.exit_codes.ExitCode``'s.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.config import IndexJobConfig
    from pipeline.job.tracking import Snapshot

__all__ = ["IndexJobResult", "run_index_job"]


@dataclass(frozen=True)
class IndexJobResult:
    version: str
    folder: Path | str  # the version's folder; its URL on an object store
    exit_code: int  # ExitCode.OK, or ExitCode.FAILED_INPUTS (listed in failures.parquet)
    report: dict = field(default_factory=dict)


def run_index_job(
    cfg: IndexJobConfig, on_progress: Callable[[Snapshot], None] | None = None
) -> IndexJobResult:
    """Run the whole job; raises CorpusbeamError for a failed run. ``on_progress`` gets a
    ``pipeline.job.tracking.Snapshot`` four times a second while it runs."""
    from pipeline.index_job import run_index_job as run  # Beam: loaded when a job runs

    return run(cfg, on_progress)
