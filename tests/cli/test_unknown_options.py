"""An option no one knows is an error before anything runs; Beam's own pass through.

``index`` and ``retry-failures`` hand Beam what they do not know themselves; a typo used to
be handed over too, and Beam ignores options nobody registered. The job itself is
replaced here (``_run_job``): these tests are about what reaches it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import corpusbeam.cli.index as index_cli
from corpusbeam.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


class Ran(Exception):
    """The job was reached: carries its config."""


@pytest.fixture
def job(monkeypatch):
    """``index`` up to the job: raises ``Ran(cfg)`` instead of running it."""

    def fake(cfg, args):
        raise Ran(cfg)

    monkeypatch.setattr(index_cli, "_run_job", fake)


def _exit(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    return exit_.value.code, capsys.readouterr().err


def test_a_misspelt_option_is_an_error_naming_it_and_the_nearest(tmp_path, job, capsys):
    out = tmp_path / "out"
    code, err = _exit(["index", str(tmp_path), "--output", str(out), "--max-tokenz", "5"], capsys)
    assert code == 2
    assert "--max-tokenz" in err and "did you mean --max-tokens?" in err
    assert not out.exists()  # nothing ran


def test_a_misspelt_beam_option_suggests_beams(tmp_path, job, capsys):
    argv = ["index", str(tmp_path), "-o", str(tmp_path / "o"), "--direct_num_worker=2"]
    code, err = _exit(argv, capsys)
    assert code == 2 and "did you mean --direct_num_workers?" in err


def test_a_beam_option_reaches_the_job(tmp_path, job):
    argv = ["index", str(tmp_path), "-o", str(tmp_path / "o"), "--direct_num_workers=2"]
    with pytest.raises(Ran) as ran:
        main(argv)
    cfg = ran.value.args[0]
    assert "--direct_num_workers=2" in cfg.pipeline_args
    assert cfg.inputs == (str(tmp_path),)


def test_a_beam_option_with_its_value_after_a_space_is_refused(tmp_path, job, capsys):
    # The 2 would otherwise be read as a second INPUT.
    argv = ["index", str(tmp_path), "-o", str(tmp_path / "o"), "--direct_num_workers", "2"]
    code, err = _exit(argv, capsys)
    assert code == 2 and "--direct_num_workers=VALUE" in err


def test_everything_after_a_bare_double_dash_goes_to_beam_unchecked(tmp_path, job):
    argv = ["index", str(tmp_path), "-o", str(tmp_path / "o"), "--", "--my_plugin_flag=1", "x"]
    with pytest.raises(Ran) as ran:
        main(argv)
    cfg = ran.value.args[0]
    assert cfg.inputs == (str(tmp_path),)
    assert cfg.pipeline_args[:2] == ("--my_plugin_flag=1", "x")


def test_an_abbreviation_is_not_a_guess(tmp_path, job, capsys):
    # ``--out`` used to mean --output silently.
    code, err = _exit(["index", str(tmp_path), "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    code, err = _exit(["index", str(tmp_path), "-o", str(tmp_path / "o"), "--max-tok=5"], capsys)
    assert code == 2 and "unknown option --max-tok" in err


def test_retry_failures_checks_its_leftovers_too(tmp_path, capsys):
    code, err = _exit(["retry-failures", str(tmp_path), "--runnr=DirectRunner"], capsys)
    assert code == 2 and "did you mean --runner?" in err
    code, err = _exit(["retry-failures", str(tmp_path), "stray"], capsys)
    assert code == 2 and "unrecognized arguments: stray" in err


def test_a_query_command_suggests_from_its_own_flags_without_loading_beam(tmp_path):
    code = (
        "import sys\n"
        "from corpusbeam.cli.main import main\n"
        "try:\n"
        f"    main(['search', {str(tmp_path)!r}, 'q', '--kk', '3'])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code)\n"
        "print('beam', 'apache_beam' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.stdout.split("\n")[:2] == ["exit 2", "beam False"], proc.stderr
    assert "unknown option --kk; did you mean -k?" in proc.stderr


def test_a_query_command_keeps_double_dash_for_a_text_starting_with_a_dash(tmp_path, monkeypatch):
    # Only the pipeline commands split argv at ``--``: here it ends the options as usual.
    import corpusbeam.cli.search as search_cli

    seen = []
    monkeypatch.setattr(search_cli, "run", lambda args: seen.append(args.text) or 0)
    assert main(["search", str(tmp_path), "--", "-q"]) == 0
    assert seen == ["-q"]
