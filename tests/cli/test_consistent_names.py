"""One name for one thing in every command: ``--output`` for where a command writes, ``DIR``
for the folder it reads."""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import pytest

from corpusbeam.cli.main import build_parser, main


@pytest.fixture
def report_calls(monkeypatch):
    """``corpusbeam report`` up to ``write_report``: its arguments, not the charts."""
    pytest.importorskip("matplotlib", reason="corpusbeam report needs corpusbeam[report]")
    import pipeline.report_html

    calls = []

    def fake(folder, out):
        calls.append((folder, out))
        return SimpleNamespace(html="report.html", pngs={})

    monkeypatch.setattr(pipeline.report_html, "write_report", fake)
    return calls


@pytest.mark.parametrize("flag", ["--output", "-o"])
def test_report_writes_where_output_says(tmp_path, report_calls, flag, capsys):
    assert main(["report", str(tmp_path), flag, str(tmp_path / "r")]) == 0
    assert report_calls == [(str(tmp_path), str(tmp_path / "r"))]
    assert capsys.readouterr().err == ""


def test_report_out_still_works_and_says_it_is_deprecated(tmp_path, report_calls, capsys):
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "r")]) == 0
    assert report_calls == [(str(tmp_path), str(tmp_path / "r"))]
    assert "--out is deprecated; use --output" in capsys.readouterr().err


def test_report_help_shows_output_not_out(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    text = capsys.readouterr().out
    assert "--output" in text and "--out " not in text and "--out," not in text


def _positionals(parser: argparse.ArgumentParser) -> list[str]:
    return [a.metavar or a.dest for a in parser._actions if not a.option_strings]


def test_every_command_calls_the_folder_it_reads_or_writes_dir():
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in ("sample", "search", "serve", "evaluate", "report", "retry-failures"):
        assert _positionals(sub.choices[name])[0] == "DIR", name
