"""The Markdown of the generated pages that needs no import of corpusbeam: tables, exit
codes, configuration and the performance page. Pure functions, loaded by
docs/gen_reference.py (which gathers their inputs from the code) and by tests/test_docs.py.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "benchmarks" / "results"

# Environment variables corpusbeam reads. tests/test_docs.py checks that every ``*ENV =
# "..."`` constant in the packages is listed here.
ENV_VARS = {
    "CORPUSBEAM_CACHE": "where readers keep their copies of object-store versions "
    "(default `~/.cache/corpusbeam`)",
    "CORPUSBEAM_ENDPOINT_KEY": "how `running_endpoint` hands the key to a local endpoint it "
    "starts in a child process",
    "CORPUSBEAM_PROGRESS": "set by `corpusbeam index` for its workers: the loopback address "
    "of the live progress channel",
    "the variable named by `--api-key-env`": "the embeddings endpoint's key (`index`, "
    "`search`, `serve`, `endpoint`); only its name travels with a job",
    "the variable named by `--service-key-env`": "the key `corpusbeam serve` requires",
    "`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, ...": "boto3's usual "
    "environment, for the launcher and readers of `s3://` outputs",
    "`GOOGLE_APPLICATION_CREDENTIALS`": "google-cloud-storage's usual credentials, for "
    "`gs://` outputs",
}

# Config fields whose flag is not the field's name.
FLAG_OF = {
    "IndexJobConfig": {
        "inputs": "`INPUT...`",
        "auto_limits": "`--flat-max`, `--graph-max`",
        "pipeline_args": "`--option=value` (Beam options, passed through)",
    },
    "ServiceConfig": {"faiss_threads": "`--threads`", "api_key": "`--service-key-env`"},
    "EndpointConfig": {"api_key": "`--api-key-env`", "blocked_words": "`--block`"},
}


def _cell(text: Any) -> str:
    """One table cell: one line, pipes escaped, and ``<``/``>`` outside code spans as
    entities (``data:image/<png|jpeg>`` is not an HTML tag)."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;")
    return "`".join(parts)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return [*out, ""]


def exit_codes_markdown(codes: list[tuple[int, str, str]]) -> str:
    """The exit-codes page from ``(status, name, meaning)`` rows (``corpusbeam.exit_codes``)."""
    out = [
        "# Exit codes",
        "",
        "Every `corpusbeam` command exits with one of these statuses, generated from "
        "`corpusbeam.exit_codes.ExitCode`.",
        "",
    ]
    out += _table(["status", "name", "meaning"], [[c, f"`{n}`", m] for c, n, m in codes])
    return "\n".join(out)


# -- configuration ------------------------------------------------------------------------


def _field_default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        return f"`{f.default!r}`"
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f"`{f.default_factory()!r}`"  # type: ignore[misc]
    return "required"


def _config_table(cls: type, parser: argparse.ArgumentParser | None) -> list[str]:
    dests = {}
    if parser is not None:
        for a in parser._actions:
            if a.option_strings:
                dests.setdefault(a.dest, ", ".join(f"`{s}`" for s in a.option_strings))
    special = FLAG_OF.get(cls.__name__, {})
    rows = [
        [
            f"`{f.name}`",
            f.type,
            _field_default(f),
            special.get(f.name) or dests.get(f.name, "(Python only)"),
        ]
        for f in dataclasses.fields(cls)
        if f.repr or f.name in special
    ]
    return _table(["field", "type", "default", "flag"], rows)


def config_markdown(configs: list[tuple[type, str, argparse.ArgumentParser | None]]) -> str:
    out = [
        "# Configuration",
        "",
        "Generated from the configuration dataclasses; each "
        "command's flag fills the field of the same name.",
        "",
    ]
    for cls, command, parser in configs:
        doc = inspect.getdoc(cls) or ""
        summary = " ".join(doc.split("\n\n")[0].split()).replace("``", "`")
        out += [f"## `{cls.__name__}` (`{command}`)", "", summary, ""]
        out += _config_table(cls, parser)
    out += ["## Environment variables", ""]
    out += _table(
        ["variable", "meaning"], [[f"`{k}`" if k.isupper() else k, v] for k, v in ENV_VARS.items()]
    )
    return "\n".join(out)


# -- performance --------------------------------------------------------------------------

RUN_KEYS = ("date", "commit", "run")  # a run: rows sharing these, under one command or setting
META = ("run", "date", "commit", "machine", "load_1m", "load", "source")
OMIT = {"benchmark", "metric", "value", "max", "unit", "command", "setting", *META}


def _group(row: dict) -> str:
    return row.get("command") or row.get("setting") or ""


def latest_rows(rows: list[dict]) -> list[dict]:
    """Each command's (or setting's) last run in the file: files are appended in order."""
    last = {_group(r): tuple(r.get(k) for k in RUN_KEYS) for r in rows}
    return [r for r in rows if tuple(r.get(k) for k in RUN_KEYS) == last[_group(r)]]


def _scalar(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k} {_scalar(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _value(row: dict) -> str:
    value = _scalar(row["value"])
    if row.get("max") is not None:  # a range, as measured over several runs or steps
        value += "-" + _scalar(row["max"])
    return f"{value} {row.get('unit', '')}".strip()


def performance_markdown(files: dict[str, list[dict]]) -> str:
    """One section a results file: the latest run of each command (or setting), with what
    its rows share above the table and what differs in it."""
    out = [
        "# Performance",
        "",
        "Current figures only, generated from `benchmarks/results/*.jsonl`. Those files "
        "are the history: every run with its date, commit, machine and load. For each "
        "benchmark command (or setting) only the last run recorded is shown here. Figures "
        "transcribed from the README before the docs were split say so as their *source*.",
        "",
    ]
    for name, rows in sorted(files.items()):
        out += [f"## {name}", ""]
        groups: dict[str, list[dict]] = {}
        for r in latest_rows(rows):
            groups.setdefault(_group(r), []).append(r)
        for key, group in groups.items():
            keys = [k for k in dict.fromkeys(k for r in group for k in r) if k not in OMIT]
            shared = [
                k
                for k in keys
                if len(group) > 1 and all(k in r and r[k] == group[0][k] for r in group)
            ]
            extras = [k for k in keys if k not in shared]
            first = group[0]
            meta = [f"`{key}`" if first.get("command") else f"**{key}**"] if key else []
            meta += [
                f"{k}: {_scalar(first[k])}"
                for k in (*META, *shared)
                if first.get(k) not in (None, "")
            ]
            if meta:
                out += ["; ".join(meta), ""]
            out += _table(
                ["metric", "value", *extras],
                [
                    [
                        r["metric"],
                        _value(r),
                        *(_scalar(r[k]) if r.get(k) is not None else "" for k in extras),
                    ]
                    for r in group
                ],
            )
    return "\n".join(out)


def read_results(folder: Path = RESULTS) -> dict[str, list[dict]]:
    return {
        p.stem: [json.loads(line) for line in p.read_text().splitlines() if line.strip()]
        for p in sorted(folder.glob("*.jsonl"))
    }
