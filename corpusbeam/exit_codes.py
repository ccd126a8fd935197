"""The exit statuses of every ``corpusbeam`` command, in one table.

The command line returns these and nothing else (Python itself exits 1 on an error no
handler caught: a bug, to be reported). The reference page ``docs/reference/exit-codes.md``
is generated from ``ExitCode`` and ``MEANING``, so the two cannot drift apart.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["MEANING", "ExitCode"]


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    ERROR = 2
    FAILED_INPUTS = 3
    BUDGET_REACHED = 4
    GATE_REJECTED = 5
    BUSY = 6
    INTERRUPTED = 130


MEANING: dict[ExitCode, str] = {
    ExitCode.OK: "the command did what it was asked; for `index` and `retry-failures`, every "
    "input was embedded and the new version is live",
    ExitCode.FAILED: "a check the command runs did not pass (`demo`); also Python's own "
    "status for an error no handler caught, which is a bug to report",
    ExitCode.ERROR: "an error the command names (`corpusbeam: error: ...` on stderr: bad "
    "input, a configuration or index-folder problem, a failed job), or a usage error "
    "(an unknown command or option, a bad value); a failed job changes nothing that is "
    "served",
    ExitCode.FAILED_INPUTS: "`index` and `retry-failures`: finished and published, with "
    "failed inputs listed in the version's `failures.parquet`; "
    "`corpusbeam retry-failures DIR` embeds only those and the changed inputs",
    ExitCode.BUDGET_REACHED: "`index`: stopped embedding before it would pass "
    "`--max-embed-tokens`; nothing was published and the live version still serves; what "
    "the run embedded is kept, and the next run goes on from it",
    ExitCode.GATE_REJECTED: "`index`: the new version was built but failed its quality gate "
    "(`--gate-queries`/`--gate-qrels`, `--min-recall`); `CURRENT` did not move, and the "
    "version is kept and marked rejected (`corpusbeam versions`)",
    ExitCode.BUSY: "`index` and `retry-failures`: another run holds the output (a local "
    "folder's `.lock`, an object store's unexpired lease); this run changed nothing and the "
    "other run goes on",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); a job stopped before it publishes leaves "
    "the live version serving",
}
