"""The docs site's generated pages cover what they claim to, and the README keeps what CI
reads. docs/gen_reference.py is loaded as a file: MkDocs is not needed here."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"


@pytest.fixture(scope="module")
def gen():
    spec = importlib.util.spec_from_file_location(
        "gen_reference", ROOT / "docs" / "gen_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def pages(gen):
    return gen.pages()


def _parsers(parser: argparse.ArgumentParser):
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _parsers(sub)


def test_every_option_of_every_command_is_in_the_cli_reference(gen, pages):
    text = pages["reference/cli.md"]
    parser = gen._cli_parser()
    commands, _ = gen._subcommands(parser)
    assert len(commands) >= 9
    for name in commands:
        assert f"## corpusbeam {name}\n" in text
    missing = [
        (p.prog, s)
        for p in _parsers(parser)
        for a in p._actions
        if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)
        for s in a.option_strings
        if f"`{s}`" not in text
    ]
    assert not missing


def test_every_openapi_path_and_schema_is_in_the_http_reference(gen, pages):
    text = pages["reference/http-api.md"]
    doc = gen._openapi_document()
    for path, methods in doc["paths"].items():
        for method in methods:
            assert f"## {method.upper()} `{path}`" in text
    for name in doc["components"]["schemas"]:
        assert f"### {name}\n" in text
        assert f"(#{name.lower()})" in text or name == "Error"


def test_every_results_file_has_a_section_with_its_latest_run(gen, pages):
    text = pages["performance.md"]
    files = sorted((ROOT / "benchmarks" / "results").glob("*.jsonl"))
    assert files
    for path in files:
        assert f"\n## {path.stem}\n" in text


def test_latest_rows_keeps_each_commands_last_run(gen):
    rows = [
        {"metric": "m", "value": 1, "command": "a", "date": "2026-01-01"},
        {"metric": "m", "value": 2, "command": "b", "date": "2026-01-01"},
        {"metric": "m", "value": 3, "command": "a", "date": "2026-01-02"},
        {"metric": "n", "value": 4, "command": "a", "date": "2026-01-02"},
        {"metric": "m", "value": 5, "setting": "x"},
    ]
    assert [r["value"] for r in gen.latest_rows(rows)] == [2, 3, 4, 5]


def test_every_environment_variable_constant_is_documented(pages):
    text = pages["reference/configuration.md"]
    found = set()
    for path in ROOT.glob("**/*.py"):
        if {".venv", "tests", "benchmarks", "docs"} & set(path.relative_to(ROOT).parts):
            continue
        found |= set(re.findall(r'^\w*ENV = "([A-Z_]+)"', path.read_text(), re.M))
    assert {"CORPUSBEAM_CACHE", "CORPUSBEAM_PROGRESS"} <= found
    assert not [name for name in found if f"`{name}`" not in text]


def test_every_config_field_and_exit_status_is_documented(gen, pages):
    import dataclasses

    text = pages["reference/configuration.md"]
    for cls, _, _ in gen._configs(gen._cli_parser()):
        for f in dataclasses.fields(cls):
            if f.repr or f.name == "api_key":
                assert f"| `{f.name}` |" in text, (cls.__name__, f.name)
    from corpusbeam.exit_codes import MEANING, ExitCode

    exits = pages["reference/exit-codes.md"]
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` | {MEANING[code][:20]}" in exits


def test_every_nav_entry_exists():
    nav = re.findall(r"^\s*- [^:\n]+: (\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), re.M)
    assert len(nav) >= 15
    generated = {
        "reference/cli.md",
        "reference/http-api.md",
        "reference/exit-codes.md",
        "reference/configuration.md",
        "performance.md",
    }
    assert not [p for p in nav if p not in generated and not (ROOT / "docs" / p).is_file()]
    assert generated <= set(nav)


def test_the_index_folder_page_names_every_manifest_field_and_file(gen):
    import dataclasses

    from indexes.storage import files
    from indexes.storage.manifest import Manifest

    text = (ROOT / "docs" / "reference" / "index-folder.md").read_text()
    assert not [f.name for f in dataclasses.fields(Manifest) if f"`{f.name}`" not in text]
    names = {k: v for k, v in vars(files).items() if k.isupper() and isinstance(v, str)}
    assert names
    assert not [v for v in names.values() if v not in text]


def _sh_block_after(marker: str, text: str) -> str:
    m = re.search(re.escape(marker) + r"\n```sh\n(.*?)\n```", text, re.S)
    assert m, f"no sh block right after {marker}"
    return m.group(1)


def test_readme_is_short_and_keeps_what_ci_reads():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert "corpusbeam index sample-corpus" in _sh_block_after("<!-- main-job command -->", text)
    assert "python -m pytest" in _sh_block_after("<!-- test command -->", text)
    assert "dashboards/grafana-corpusbeam.json" in text
