"""Running ``python -m corpusbeam`` in a child process, as a user would."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from tests.support.paths import REPO


def cli_command(*argv: str, python_flags: tuple[str, ...] = ()) -> list[str]:
    """The command line of ``corpusbeam ARGV`` in this interpreter (``python_flags`` go
    before ``-m``, e.g. ``("-X", "importtime")``)."""
    return [sys.executable, *python_flags, "-m", "corpusbeam", *argv]


def run_cli(
    *argv: str,
    cwd: Path | str = REPO,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    python_flags: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """``corpusbeam ARGV`` run to its end; stdout and stderr captured as text."""
    return subprocess.run(
        cli_command(*argv, python_flags=python_flags),
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
    )


def start_cli(
    *argv: str, cwd: Path | str = REPO, env: Mapping[str, str] | None = None, **popen
) -> subprocess.Popen:
    """``corpusbeam ARGV`` started and left running (to read from, or to kill)."""
    return subprocess.Popen(cli_command(*argv), cwd=cwd, env=env, **popen)
