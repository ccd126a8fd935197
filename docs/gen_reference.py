"""The generated reference pages: the command line, the HTTP API, exit codes, configuration
and the performance page.

Every ``*_markdown`` function is pure (its input in, Markdown out) so that
``tests/test_docs.py`` checks the pages without MkDocs; those that import nothing of
corpusbeam (exit codes, configuration, performance, tables) are in docs/gen_markdown.py.
Run by MkDocs through the ``gen-files`` plugin (mkdocs.yml), the bottom of this file
writes the pages into the build; nothing is written into ``docs/``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _sibling(name: str) -> Any:
    """docs/NAME.py, loaded by its path (docs/ is no package, and MkDocs runs this file)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_md = _sibling("gen_markdown")
_table, latest_rows, read_results = _md._table, _md.latest_rows, _md.read_results

if str(ROOT) not in sys.path:  # a checkout that is not installed
    sys.path.insert(0, str(ROOT))


def _cli_parser() -> argparse.ArgumentParser:
    from corpusbeam.cli.main import build_parser

    return build_parser()


def _service_config_class() -> type:
    from corpusbeam.retrieval.service.config import ServiceConfig

    return ServiceConfig


def _openapi_document() -> dict:
    from corpusbeam.retrieval.service.openapi import openapi_document

    return openapi_document(_service_config_class()())


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
    if "oneOf" in schema:
        return " or ".join(_ref(s) for s in schema["oneOf"])
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


def _exit_codes() -> list[tuple[int, str, str]]:
    """``(status, name, meaning)`` for every ``ExitCode``."""
    from corpusbeam.exit_codes import MEANING, ExitCode

    return [(int(code), code.name, MEANING[code]) for code in ExitCode]


def _configs(parser: argparse.ArgumentParser) -> list[tuple[type, str, Any]]:
    commands, _ = _subcommands(parser)
    from corpusbeam.inference.server import config as endpoint
    from pipeline.config import IndexJobConfig as job

    return [
        (job, "corpusbeam index", commands.get("index")),
        (_service_config_class(), "corpusbeam serve", commands.get("serve")),
        (endpoint.EndpointConfig, "corpusbeam endpoint", commands.get("endpoint")),
    ]


def pages() -> dict[str, str]:
    """Every generated page, by its path under docs/."""
    parser = _cli_parser()
    doc = _openapi_document()
    return {
        "reference/cli.md": cli_markdown(parser),
        "reference/http-api.md": openapi_markdown(doc),
        "reference/openapi.json": json.dumps(doc, indent=2),
        "reference/exit-codes.md": _md.exit_codes_markdown(_exit_codes()),
        "reference/configuration.md": _md.config_markdown(_configs(parser)),
        "performance.md": _md.performance_markdown(read_results()),
    }


def _write_with_gen_files() -> None:
    import mkdocs_gen_files

    for path, text in pages().items():
        with mkdocs_gen_files.open(path, "w") as f:
            f.write(text)


if __name__ in ("__main__", "<run_path>"):  # runpy.run_path, as mkdocs-gen-files runs it
    _write_with_gen_files()
