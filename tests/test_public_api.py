"""The public API: one import name, ``from corpusbeam import ...``, cheap to import.

Each name loads its module on first use; the names a user imports to run a job or to
search load neither Beam nor FAISS until the job runs or a folder is opened.
"""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

import corpusbeam

ROOT = Path(__file__).resolve().parent.parent

API = (
    "ClientSettings",
    "ConfigError",
    "CorpusbeamError",
    "EmbeddingError",
    "EmbeddingsClient",
    "ExitCode",
    "IndexFolderError",
    "IndexJobConfig",
    "IndexJobResult",
    "JobError",
    "Searcher",
    "open_index",
    "run_index_job",
)


def loaded_after(statement: str) -> list[str]:
    """The top-level modules of Beam and FAISS that ``statement`` loads, in a fresh process."""
    code = (
        f"import sys; {statement}; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'apache_beam', 'faiss'}))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    return ast.literal_eval(r.stdout.strip().splitlines()[-1])


def test_the_api_is_what_it_says():
    assert corpusbeam.__all__ == sorted(API)
    assert set(API) <= set(dir(corpusbeam))


@pytest.mark.parametrize("name", API)
def test_each_name_is_its_modules_own(name):
    """A lazy name is the very object its table names, defined at or under that module."""
    value = getattr(corpusbeam, name)
    home = corpusbeam._EXPORTS[name]
    assert getattr(importlib.import_module(home), name) is value
    assert value.__module__ == home or value.__module__.startswith(home + ".")


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        corpusbeam.Nope  # noqa: B018


def test_one_exception_tree():
    for name in ("ConfigError", "IndexFolderError", "JobError", "EmbeddingError"):
        assert issubclass(getattr(corpusbeam, name), corpusbeam.CorpusbeamError)


def test_running_a_job_or_searching_loads_neither_beam_nor_faiss_on_import():
    everything_but_open_index = ", ".join(n for n in API if n != "open_index")
    assert loaded_after(f"from corpusbeam import {everything_but_open_index}") == []


def test_open_index_loads_faiss_but_no_beam():
    assert loaded_after("from corpusbeam import open_index") == ["faiss"]
