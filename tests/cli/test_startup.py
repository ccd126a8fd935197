"""The command line starts fast and speaks for itself: commands load only their own
library, and a normal run prints no line that corpusbeam did not write."""

from __future__ import annotations

import os
import re

import pytest

from tests.support.cli import run_cli
from tests.support.paths import REPO

HEAVY = ("apache_beam", "numpy", "faiss", "httpx", "pyarrow", "starlette")


def imported(*argv: str) -> set[str]:
    """Top-level modules ``corpusbeam ARGV`` imports (``python -X importtime``)."""
    proc = run_cli(*argv, python_flags=("-X", "importtime"), timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {
        m.group(1).strip().split(".")[0]
        for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|(.*)$", proc.stderr, re.M)
    }


@pytest.mark.parametrize(
    "argv", [("--help",), ("search", "--help"), ("index", "--help"), ("serve", "--help")]
)
def test_help_loads_no_heavy_library(argv):
    loaded = imported(*argv)
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


@pytest.mark.parametrize("command", ["search", "evaluate"])
def test_query_side_commands_never_load_beam(command, float_folder):
    """Running them, not just --help. (``serve`` imports ``retrieval``, which
    tests/test_layers.py keeps free of Beam, down to imports inside functions.)"""
    argv = {
        "search": ("search", str(float_folder), "cats", "-k", "1"),
        "evaluate": ("evaluate", str(float_folder), "--queries", "5"),
    }[command]
    assert "apache_beam" not in imported(*argv)


# A line corpusbeam writes: its log format naming one of its own loggers, or the commands'
# own output (the sample's line, the run report, search hits).
_OUR_LOG = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ (corpusbeam|indexes|pipeline|transforms)[.:]"
)
_OUR_OUTPUT = re.compile(
    r"^(wrote the sample corpus to |version v\S+ -> |  read \d+ documents|  \d+ requests, |"
    r"  index updated: |  index built in full: |  unchanged, nothing to do: |hybrid: |"
    r"\s+\d+\s+-?\d+\.\d{4}  |     \S)"
)


@pytest.mark.slow
def test_sample_index_search_print_only_our_lines(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    lines = []
    for argv in (
        ("sample", "corpus"),
        ("index", "corpus", "--output", "out"),
        ("search", "out", "cats purr in the sun", "-k", "3"),
    ):
        proc = run_cli(*argv, cwd=tmp_path, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        lines += (proc.stdout + proc.stderr).splitlines()
    foreign = [ln for ln in lines if ln and not (_OUR_LOG.match(ln) or _OUR_OUTPUT.match(ln))]
    assert foreign == []
    assert any("animals/cats.md" in ln for ln in lines)
