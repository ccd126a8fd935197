"""A ``CURRENT`` that names anything but a plain version name is refused by every reader:
the job, ``search``, ``serve`` (at start and when it follows a change), ``evaluate`` and
``retry-failures``. Beside the output sits a valid index folder ``x``, so following
``../x`` would succeed: only the refusal makes these tests pass."""

from __future__ import annotations

import shutil

import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import IndexFolderError
from corpusbeam.retrieval.embedder import EmbedderPool
from corpusbeam.retrieval.live import LiveIndex
from indexes.storage import versions
from tests.support.folders import flip, make_versioned

ESCAPE = "../x"


@pytest.fixture
def escaped(tmp_path, build_text, float_folder):
    out = make_versioned(tmp_path / "out", build_text, "v1")
    shutil.copytree(float_folder, out / "x")  # where versions/../x leads
    (out / "versions" / "v1" / "report.json").write_text('{"job": {}}')
    flip(out, ESCAPE)
    return out


def test_the_library_readers_refuse_it(escaped):
    for read in (versions.read_current, versions.current_version, versions.resolve_index_folder):
        with pytest.raises(IndexFolderError, match="not a version name"):
            read(escaped)


@pytest.mark.parametrize(
    "argv",
    [
        ["search", "{out}", "the owl"],
        ["evaluate", "{out}", "--queries", "5"],
        ["retry-failures", "{out}"],
        ["serve", "{out}", "--port", "0"],
        ["versions", "{out}"],
        ["rollback", "{out}"],
    ],
    ids=lambda a: a[0],
)
def test_every_command_refuses_it(escaped, argv, capsys):
    code = main([a.format(out=escaped) for a in argv])
    assert code == 2
    assert "not a version name" in capsys.readouterr().err


def test_serve_keeps_its_version_when_current_turns_into_an_escape(tmp_path, build_text):
    out = make_versioned(tmp_path / "out", build_text, "v1")
    with EmbedderPool() as pool:
        live = LiveIndex(out, embedders=pool)
        flip(out, ESCAPE)
        assert live.refresh() is False
        assert live.version == "v1" and "not a version name" in live.last_error
