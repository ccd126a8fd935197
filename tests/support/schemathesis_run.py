"""Running schemathesis from tests: the flags every corpusbeam schema test shares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def run_schemathesis(schema: str, *extra: str, cwd: Path) -> subprocess.CompletedProcess:
    """``schemathesis run`` with every check but ``positive_data_acceptance`` (our schemas
    admit values the server refuses by design: a model's unsupported dimensions, an image
    that is not an image), 25 examples an operation, a fixed seed, no example database."""
    cmd = [
        sys.executable, "-m", "schemathesis.cli", "run", schema,
        *extra,
        "--checks", "all",
        "--exclude-checks", "positive_data_acceptance",
        "--max-examples", "25",
        "--seed", "1",
        "--workers", "1",
        "--generation-database", "none",
        "--request-timeout", "10",
        "--no-color",
    ]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=110, cwd=cwd)
