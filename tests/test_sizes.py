"""Size limits (issue 26): no module over 400 lines, no function over 80.

Every first-party ``.py`` file is parsed with ``ast``. A module's size is its line count; a
function's (methods and nested functions included) is ``end_lineno - lineno + 1``, so its
decorators are not counted but its docstring is.

``EXEMPT`` names the declarative tables (argparse parsers, the OpenAPI document): a list of
options reads best as one list, so these may run to ``EXEMPT_LIMIT`` lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("corpusbeam", "indexes", "pipeline", "transforms", "tests", "benchmarks", "docs")

MODULE_LIMIT = 400
FUNCTION_LIMIT = 80
EXEMPT_LIMIT = 200

EXEMPT = {
    "corpusbeam/cli/index.py::add_parser": "argparse parser of `corpusbeam index`",
    "corpusbeam/inference/server/flags.py::add_arguments": "argparse flags of the endpoint",
    "corpusbeam/retrieval/service/openapi.py::openapi_document": "the OpenAPI document",
}


def _python_files() -> list[Path]:
    files: list[Path] = []
    for package in PACKAGES:
        files.extend(sorted((ROOT / package).rglob("*.py")))
    return files


def _functions(tree: ast.AST, prefix: str = ""):
    """Yield (qualname, lines) for every function under ``tree``, nested ones included."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = prefix + node.name
            if not isinstance(node, ast.ClassDef):
                yield name, node.end_lineno - node.lineno + 1
            yield from _functions(node, name + ".")
        else:
            yield from _functions(node, prefix)


def measure() -> dict[str, tuple[int, int]]:
    """Every module and function in our tree: key -> (lines, limit)."""
    sizes: dict[str, tuple[int, int]] = {}
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        source = path.read_text(encoding="utf-8")
        sizes[rel] = (len(source.splitlines()), MODULE_LIMIT)
        for qualname, lines in _functions(ast.parse(source, filename=rel)):
            key = f"{rel}::{qualname}"
            limit = EXEMPT_LIMIT if key in EXEMPT else FUNCTION_LIMIT
            sizes[key] = (lines, limit)
    return sizes


def test_the_tree_is_found():
    sizes = measure()
    assert "tests/test_sizes.py" in sizes
    assert "corpusbeam/__init__.py" in sizes


def test_no_module_or_function_over_the_limit():
    over = {key: lines for key, (lines, limit) in measure().items() if lines > limit}
    assert not over, (
        f"over the limit ({MODULE_LIMIT} lines a module, {FUNCTION_LIMIT} a function, "
        f"{EXEMPT_LIMIT} an exempt table): {over}; split it into named steps or modules"
    )


def test_exemptions_exist():
    sizes = measure()
    assert not [key for key in EXEMPT if key not in sizes]
