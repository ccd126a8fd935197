"""The generated reference pages: the command line, the HTTP API, exit codes, configuration
and the performance page.

Every ``*_markdown`` function is pure (its input in, Markdown out) so that
``tests/test_docs.py`` checks the pages without MkDocs. Run by MkDocs through the
``gen-files`` plugin (mkdocs.yml), the bottom of this file writes the pages into the build;
nothing is written into ``docs/``.

The code is found under its package-to-be first (``corpusbeam.cli.main``, ...) and under
today's top-level packages second, so the pages build before and after the move.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import inspect
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

if str(ROOT) not in sys.path:  # a checkout that is not installed
    sys.path.insert(0, str(ROOT))

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

# What each exit status of the index job means, by the constant's name (EXIT_ or not).
JOB_EXIT_MEANING = {
    "OK": "every input embedded; the new version is live",
    "FAILED_INPUTS": "finished and published, with failed inputs listed in the version's "
    "`failures.parquet`",
}


def _import_first(*names: str) -> Any:
    """The first of ``names`` that exists; a module that exists but fails to import raises."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise
    raise ModuleNotFoundError(f"none of {', '.join(names)}")


def _cli_parser() -> argparse.ArgumentParser:
    return _import_first("corpusbeam.cli.main", "cli.main").build_parser()


def _cli_main_source() -> str:
    return inspect.getsource(_import_first("corpusbeam.cli.main", "cli.main").main)


def _service_config_class() -> type:
    return _import_first(
        "corpusbeam.retrieval.service.config", "retrieval.service.config"
    ).ServiceConfig


def _openapi_document() -> dict:
    mod = _import_first("corpusbeam.retrieval.service.openapi", "retrieval.service.openapi")
    return mod.openapi_document(_service_config_class()())


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


# -- the command line ---------------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> tuple[dict, dict]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            return dict(action.choices), helps
    return {}, {}


def _flags(action: argparse.Action) -> str:
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            metavar = action.metavar or action.dest.upper()
            names += f" `{metavar if isinstance(metavar, str) else ' '.join(metavar)}`"
        return names
    return f"`{action.metavar or action.dest}`"


def _default(action: argparse.Action) -> str:
    d = action.default
    if d is None or d is argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(d, (list, tuple)) and not d:
        return ""
    return f"`{d}`"


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    if text is argparse.SUPPRESS:
        return ""
    with contextlib.suppress(KeyError, TypeError, ValueError):
        text = text % {**vars(action), "prog": prog}
    if action.choices and not isinstance(action, argparse._SubParsersAction):
        text = (
            (text + " " if text else "")
            + "(one of "
            + ", ".join(f"`{c}`" for c in action.choices)
            + ")"
        )
    if action.required and action.option_strings:
        text = "required. " + text
    return text


def _parser_section(parser: argparse.ArgumentParser, title: str, summary: str | None) -> list[str]:
    out = [f"## {title}", ""]
    if parser.description or summary:
        out += [parser.description or summary, ""]
    out += ["```text", parser.format_usage().strip(), "```", ""]
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))
            and a.help is not argparse.SUPPRESS
        ]
        if not actions:
            continue
        out += [f"**{group.title}**", ""]
        out += _table(
            ["argument", "default", "meaning"],
            [[_flags(a), _default(a), _help(a, parser.prog)] for a in actions],
        )
    return out


def cli_markdown(parser: argparse.ArgumentParser) -> str:
    """Every command, its usage and every argument, from the parser ``corpusbeam`` runs."""
    commands, helps = _subcommands(parser)
    out = [
        "# Command line",
        "",
        "Generated from the `corpusbeam` argument parser (`docs/gen_reference.py`). "
        "`corpusbeam COMMAND --help` prints the same.",
        "",
    ]
    out += _parser_section(parser, "corpusbeam", None)
    out += _table(
        ["command", "what it does"],
        [[f"[`{n}`](#corpusbeam-{n})", helps.get(n, "")] for n in commands],
    )
    for name, sub in commands.items():
        out += _parser_section(sub, f"corpusbeam {name}", helps.get(name))
    return "\n".join(out)


# -- the HTTP API -------------------------------------------------------------------------


def _ref(schema: dict) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    kind = schema.get("type", "")
    kind = " or ".join(kind) if isinstance(kind, list) else kind
    if kind == "array" and "items" in schema:
        return f"array of {_ref(schema['items'])}"
    return kind or "object"


def _constraints(schema: dict) -> str:
    bits = []
    if "enum" in schema:
        bits.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    for key, word in (
        ("minimum", "min"),
        ("maximum", "max"),
        ("minLength", "min length"),
        ("maxLength", "max length"),
        ("default", "default"),
    ):
        if key in schema:
            bits.append(f"{word} {schema[key]}")
    return "; ".join(bits)


def _properties(schema: dict) -> list[str]:
    required = set(schema.get("required", ()))
    rows = [
        [
            f"`{name}`",
            _ref(prop),
            "yes" if name in required else "",
            "; ".join(x for x in (prop.get("description", ""), _constraints(prop)) if x),
        ]
        for name, prop in schema.get("properties", {}).items()
    ]
    return _table(["field", "type", "required", "meaning"], rows) if rows else []


def openapi_markdown(doc: dict) -> str:
    """Every path and method of the service's OpenAPI document, and its schemas."""
    info = doc.get("info", {})
    out = [
        "# HTTP API",
        "",
        f"{info.get('description', '')} Generated from the OpenAPI {doc.get('openapi', '')} "
        "document `corpusbeam serve` answers at `GET /openapi.json` (with the default limits); "
        "a copy: [openapi.json](openapi.json).",
        "",
    ]
    schemes = doc.get("components", {}).get("securitySchemes", {})
    if schemes:
        out += [
            "Routes marked *key* accept, when the service has a key (`--service-key-env`): "
            + ", ".join(
                f"`{s['name']}: KEY` header"
                if s.get("type") == "apiKey"
                else f"`Authorization: {s.get('scheme', '').title()} KEY`"
                for s in schemes.values()
            )
            + ".",
            "",
        ]
    for path, methods in doc.get("paths", {}).items():
        for method, op in methods.items():
            out += [f"## {method.upper()} `{path}`", ""]
            out += [op.get("summary", "") + (" *(key)*" if op.get("security") else ""), ""]
            params = op.get("parameters", [])
            if params:
                out += _table(
                    ["parameter", "in", "type", "required"],
                    [
                        [
                            f"`{p['name']}`",
                            p.get("in", ""),
                            _ref(p.get("schema", {})),
                            "yes" if p.get("required") else "",
                        ]
                        for p in params
                    ],
                )
            body = op.get("requestBody")
            if body:
                for ctype, content in body.get("content", {}).items():
                    out += [f"Request body (`{ctype}`): {_ref(content.get('schema', {}))}", ""]
            rows = []
            for status, resp in op.get("responses", {}).items():
                kinds = [
                    f"`{c}` {_ref(v.get('schema', {}))}" for c, v in resp.get("content", {}).items()
                ]
                rows.append([status, resp.get("description", ""), ", ".join(kinds)])
            out += _table(["status", "meaning", "body"], rows)
            for content in (resp.get("content", {}) for resp in op.get("responses", {}).values()):
                for value in content.values():
                    if value.get("schema", {}).get("properties"):
                        out += ["Response fields:", "", *_properties(value["schema"])]
    out += ["## Schemas", ""]
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        out += [f"### {name}", ""]
        if schema.get("description"):
            out += [schema["description"], ""]
        out += _properties(schema)
    return "\n".join(out)


# -- exit codes ---------------------------------------------------------------------------


def _job_exit_codes() -> dict[str, int]:
    """The index job's statuses: ``ExitCode`` when the package has one, else the ``EXIT_*``
    constants read from the job's source (importing it would load Beam)."""
    try:
        enum = _import_first("corpusbeam.cli.exit_codes").ExitCode
        return {m.name: int(m.value) for m in enum}
    except ModuleNotFoundError:
        pass
    for rel in ("pipeline/job/__init__.py", "pipeline/index_job.py"):
        path = ROOT / rel
        if path.exists():
            codes = {}
            for node in ast.parse(path.read_text()).body:
                if (
                    isinstance(node, ast.Assign)
                    and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name)
                    and node.targets[0].id.startswith("EXIT_")
                    and isinstance(node.value, ast.Constant)
                ):
                    codes[node.targets[0].id] = node.value.value
            return codes
    return {}


def _main_handlers(source: str) -> list[tuple[str, int]]:
    """``(exception, status)`` for each ``except X: ... return N`` in ``main()``."""
    found = []
    for node in ast.walk(ast.parse(inspect.cleandoc(source) if source[:1].isspace() else source)):
        if isinstance(node, ast.ExceptHandler) and node.type is not None:
            for stmt in node.body:
                if isinstance(stmt, ast.Return) and isinstance(stmt.value, ast.Constant):
                    found.append((ast.unparse(node.type), stmt.value.value))
    return found


def exit_codes_markdown(job_codes: dict[str, int], handlers: list[tuple[str, int]]) -> str:
    out = [
        "# Exit codes",
        "",
        "Generated from the index job's constants and the command line's `main()`.",
        "",
        "## `corpusbeam index` and `retry-failures`",
        "",
    ]
    out += _table(
        ["status", "constant", "meaning"],
        [
            [code, f"`{name}`", JOB_EXIT_MEANING.get(name.removeprefix("EXIT_"), "")]
            for name, code in sorted(job_codes.items(), key=lambda kv: kv[1])
        ],
    )
    out += [
        "Any other non-zero status is a failed run, which changes nothing that is "
        "served. `corpusbeam retry-failures DIR` runs the recorded job again: only "
        "failed and changed inputs are embedded.",
        "",
        "## Every command",
        "",
    ]
    rows = [
        [
            code,
            f"`{exc}` raised",
            "the message is printed as `corpusbeam: error: ...`" if "Error" in exc else "",
        ]
        for exc, code in handlers
    ]
    rows.append([2, "usage error", "argparse: an unknown command, option or value"])
    out += _table(["status", "cause", "note"], rows)
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


def _configs(parser: argparse.ArgumentParser) -> list[tuple[type, str, Any]]:
    commands, _ = _subcommands(parser)
    job = _import_first("pipeline.config").IndexJobConfig
    endpoint = _import_first("corpusbeam.inference.server.config", "inference.server.config")
    return [
        (job, "corpusbeam index", commands.get("index")),
        (_service_config_class(), "corpusbeam serve", commands.get("serve")),
        (endpoint.EndpointConfig, "corpusbeam endpoint", commands.get("endpoint")),
    ]


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


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    parser = _cli_parser()
    doc = _openapi_document()
    return {
        "reference/cli.md": cli_markdown(parser),
        "reference/http-api.md": openapi_markdown(doc),
        "reference/openapi.json": json.dumps(doc, indent=2),
        "reference/exit-codes.md": exit_codes_markdown(
            _job_exit_codes(), _main_handlers(_cli_main_source())
        ),
        "reference/configuration.md": config_markdown(_configs(parser)),
        "performance.md": performance_markdown(read_results()),
    }


def _write_with_gen_files() -> None:
    import mkdocs_gen_files

    for path, text in pages().items():
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(text)


if __name__ in ("__main__", "<run_path>"):  # runpy.run_path, as mkdocs-gen-files runs it
    _write_with_gen_files()
