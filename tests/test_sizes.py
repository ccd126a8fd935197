"""Size limits (issue 26): no module over 400 lines, no function over 80.

Every first-party ``.py`` file is parsed with ``ast``. A module's size is its line count; a
function's (methods and nested functions included) is ``end_lineno - lineno + 1``, so its
decorators are not counted but its docstring is.

``EXEMPT`` names the declarative tables (argparse parsers, the OpenAPI document): a list of
options reads best as one list, so these may run to ``EXEMPT_LIMIT`` lines.

``KNOWN_OVER`` is a ratchet: the offenders there were when the check was written. A new
offender fails, and so does an entry that is no longer over its limit, so the list only
shrinks: whoever splits one removes it here in the same commit.
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

# Keys: "path" for a module, "path::qualname" for a function. Only ever remove entries.
KNOWN_OVER = {
    "pipeline/index_job.py",
    "pipeline/index_job.py::_run",
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


def test_no_new_module_or_function_over_the_limit():
    over = {key: lines for key, (lines, limit) in measure().items() if lines > limit}
    new = {key: lines for key, lines in over.items() if key not in KNOWN_OVER}
    assert not new, (
        f"over the limit ({MODULE_LIMIT} lines a module, {FUNCTION_LIMIT} a function, "
        f"{EXEMPT_LIMIT} an exempt table): {new}; split it into named steps or modules"
    )


def test_known_over_only_shrinks():
    sizes = measure()
    missing = sorted(key for key in KNOWN_OVER if key not in sizes)
    assert not missing, f"KNOWN_OVER names what no longer exists; remove: {missing}"
    fixed = sorted(key for key in KNOWN_OVER if sizes[key][0] <= sizes[key][1])
    assert not fixed, f"now within the limit; remove from KNOWN_OVER: {fixed}"


def test_exemptions_exist_and_are_not_also_known_over():
    sizes = measure()
    assert not [key for key in EXEMPT if key not in sizes]
    assert not set(EXEMPT) & KNOWN_OVER
