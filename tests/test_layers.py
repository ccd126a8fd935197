"""The layering, written down: which package may import which.

    corpusbeam.cli ─────► pipeline ──► transforms ──► indexes ──► corpusbeam.inference
     │                                    │                        ▲
     └──► corpusbeam.retrieval ───────────┼──► indexes, inference  │
                                          └────────────────────────┘
    every layer ──► base: corpusbeam (its __init__), corpusbeam._lazy, corpusbeam.errors,
                    corpusbeam.exit_codes, corpusbeam.asgi

Data flows one way, down. ``base`` imports nothing of ours above it: the root of the
exception tree, lazy package names and the HTTP toolkit both apps share. ``inference``
(the wire protocol) and ``indexes`` (FAISS) import no Beam; ``indexes`` uses only the
protocol's codecs and errors, not its client or endpoint; ``retrieval`` (query time) imports
no Beam and nothing of the job; ``transforms`` talks HTTP only through
``corpusbeam.inference.client``; nothing imports the commands (``corpusbeam.cli``, ``python -m
corpusbeam``). Inside ``inference``, only the reference endpoint (``inference.server``) knows of
itself. Every import counts, including those inside functions.

A module's layer is the longest prefix of its dotted name in ``LAYERS``: layers are decided by
module prefix, not by top-level package. A package's lazy ``_EXPORTS`` table counts as
imports of the modules it names; ``corpusbeam``'s own table (the public API) may name any
library module but never the commands, and library code never imports from it.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# module prefix -> layer. "corpusbeam" names the package's __init__ only: a new module
# beside _lazy, errors, exit_codes and asgi must be given a layer here.
LAYERS: dict[str, str] = {
    "corpusbeam": "base",
    "corpusbeam._lazy": "base",
    "corpusbeam.errors": "base",
    "corpusbeam.exit_codes": "base",
    "corpusbeam.asgi": "base",
    "corpusbeam.inference": "inference",
    "indexes": "indexes",
    "transforms": "transforms",
    "pipeline": "pipeline",
    "corpusbeam.retrieval": "retrieval",
    "corpusbeam.cli": "cli",
    "corpusbeam.__main__": "cli",
}
# The top-level packages, besides tests and benchmarks.
OURS = ("corpusbeam", "indexes", "pipeline", "transforms")

INFERENCE = "corpusbeam.inference"
SERVER = "corpusbeam.inference.server"  # inside inference, only the endpoint imports it
RETRIEVAL = "corpusbeam.retrieval"
COMMANDS = ("corpusbeam.cli", "corpusbeam.__main__")

# layer -> the modules (ours, by prefix) and libraries it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "base": (
        INFERENCE,
        RETRIEVAL,
        *COMMANDS,
        "indexes",
        "pipeline",
        "transforms",
        "apache_beam",
        "faiss",
        "httpx",
    ),
    "inference": (
        RETRIEVAL,
        *COMMANDS,
        "indexes",
        "pipeline",
        "transforms",
        "apache_beam",
        "faiss",
    ),
    "indexes": (
        f"{INFERENCE}.client",
        SERVER,
        RETRIEVAL,
        *COMMANDS,
        "pipeline",
        "transforms",
        "apache_beam",
        "httpx",
    ),
    "transforms": (
        SERVER,
        RETRIEVAL,
        *COMMANDS,
        "pipeline",
        "httpx",
        "starlette",
        "uvicorn",
    ),
    "pipeline": (RETRIEVAL, *COMMANDS, "starlette", "uvicorn"),
    "retrieval": (*COMMANDS, "pipeline", "transforms", "apache_beam"),
    # commands reach Beam only through pipeline, inside run()
    "cli": ("apache_beam",),
}
# The only exceptions, by module prefix: the HTTP toolkit answers with the protocol's
# StatusError tree (inference.errors, which itself imports only corpusbeam.errors), and
# its readiness poll is an HTTP request.
ALLOWED: dict[str, tuple[str, ...]] = {
    "corpusbeam.asgi": (f"{INFERENCE}.errors",),
    "corpusbeam.asgi.serving": ("httpx",),
}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name (None: it has none)."""
    prefixes = [p for p in LAYERS if _under(module, p)]
    if not prefixes:
        return None
    best = max(prefixes, key=len)
    if best == "corpusbeam" and module != "corpusbeam":
        return None
    return LAYERS[best]


def imported_names(source: str) -> set[str]:
    """Every module named by an import statement anywhere in ``source``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _allowed(module: str, name: str) -> bool:
    return any(
        _under(module, where) and any(_under(name, ok) for ok in allowed)
        for where, allowed in ALLOWED.items()
    )


def violations(module: str, source: str) -> list[str]:
    """The imports in ``source`` (the text of ``module``) that break the layering."""
    layer = layer_of(module)
    assert layer is not None, f"{module} has no layer"
    bad = []
    for name in sorted(imported_names(source)):
        if _allowed(module, name):
            continue
        below_server = layer == "inference" and not _under(module, SERVER)
        if any(_under(name, p) for p in FORBIDDEN[layer]) or (
            below_server and _under(name, SERVER)
        ):
            bad.append(name)
    return bad


def exports(source: str) -> dict[str, str]:
    """A package's lazy ``_EXPORTS`` table (name -> module), read from its source."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets
        ):
            return ast.literal_eval(node.value)
    return {}


def export_violations(package: str, source: str) -> list[str]:
    """The modules ``package``'s ``_EXPORTS`` names that its layer may not import: a lazy
    name is an import too, made later. The public API (``corpusbeam``'s own table) may
    name any library module, never the commands."""
    targets = sorted(set(exports(source).values()))
    if package == "corpusbeam":
        return [t for t in targets if any(_under(t, c) for c in COMMANDS)]
    return [t for t in targets if violations(package, f"import {t}")]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def our_modules() -> dict[str, Path]:
    return {module_name(path): path for top in OURS for path in sorted((ROOT / top).rglob("*.py"))}


def test_every_module_has_a_layer():
    assert [m for m in our_modules() if layer_of(m) is None] == []


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_no_back_edges(layer):
    found = {
        module: bad
        for module, path in our_modules().items()
        if layer_of(module) == layer and (bad := violations(module, path.read_text()))
    }
    assert found == {}, f"{layer} imports what sits above it: {found}"


@pytest.mark.parametrize(
    ("module", "source"),
    [
        ("corpusbeam.errors", "import numpy\nfrom corpusbeam.inference.codec import decode\n"),
        ("corpusbeam.asgi.auth", "import httpx"),
        ("corpusbeam._lazy", "def f():\n    from indexes.reader import open_index\n"),
        ("indexes.reader", "import apache_beam as beam"),
        ("corpusbeam.inference.codec", "def f():\n    from indexes.ann.train import train_index\n"),
        ("corpusbeam.inference.client.core", "from corpusbeam.inference.server import run"),
        ("corpusbeam.asgi.errors", "from corpusbeam.inference.client import EmbeddingsClient"),
        ("indexes.reader", "from corpusbeam.inference.client import EmbeddingsClient"),
        ("transforms.embed", "from corpusbeam.inference.server import running_endpoint"),
        ("corpusbeam.__main__", "import apache_beam"),
        ("corpusbeam.retrieval.searcher", "from pipeline.index_job import run_index_job"),
        ("transforms.embed", "import httpx"),
        ("pipeline.index_job", "from corpusbeam.retrieval.searcher import Searcher"),
        ("indexes.reader", "from corpusbeam.retrieval.searcher import Searcher"),
        ("pipeline.index_job", "def f():\n    from corpusbeam.cli.main import main\n"),
        ("corpusbeam.cli.search", "import apache_beam"),
    ],
)
def test_a_back_edge_is_caught(module, source):
    """The check above is not vacuous: each kind of back edge, even inside a function."""
    assert violations(module, source)


def test_lazy_tables_respect_the_layers():
    found = {
        module: bad
        for module, path in our_modules().items()
        if path.name == "__init__.py" and (bad := export_violations(module, path.read_text()))
    }
    assert found == {}


@pytest.mark.parametrize(
    ("package", "table"),
    [
        ("indexes", '_EXPORTS = {"Searcher": "corpusbeam.retrieval.searcher"}'),
        ("corpusbeam.inference", '_EXPORTS = {"open_index": "indexes.reader"}'),
        ("corpusbeam", '_EXPORTS = {"main": "corpusbeam.cli.main"}'),
    ],
)
def test_a_lazy_back_edge_is_caught(package, table):
    assert export_violations(package, table)


def library_imports_of_the_api(source: str) -> list[int]:
    """Lines of ``from corpusbeam import ...``: in library code, a hidden edge to whatever
    the lazy table names (and a cycle waiting to happen). Library code imports a name from
    its module; the lazy names are for users, tests, benchmarks and docs."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "corpusbeam"
    ]


def test_library_code_never_imports_the_public_api():
    found = {
        module: lines
        for module, path in our_modules().items()
        if (lines := library_imports_of_the_api(path.read_text()))
    }
    assert found == {}
    assert library_imports_of_the_api("def f():\n    from corpusbeam import Searcher\n")


def test_every_package_is_covered():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == set(OURS)
    assert set(LAYERS.values()) == set(FORBIDDEN)


def test_the_base_loads_only_the_standard_library():
    """``import corpusbeam.errors`` costs nothing: no numpy, Beam, FAISS or HTTP client,
    and nothing of ours outside the base."""
    heavy = ("numpy", "apache_beam", "faiss", "httpx", "starlette", "indexes", "pipeline")
    above = (INFERENCE, RETRIEVAL, *COMMANDS)
    code = (
        "import sys, corpusbeam, corpusbeam._lazy, corpusbeam.errors; "
        f"bad = [m for m in sys.modules if m.split('.')[0] in {(*heavy, 'transforms')!r} "
        f"or m.startswith({above!r})]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def test_commands_never_import_each_other():
    """Shared flags live in corpusbeam/cli/options.py (the index job's groups in
    job_flags.py), the index job's live display in corpusbeam/cli/display.py; a command
    module imports no other command."""
    shared = ("options", "display", "job_flags")
    found = {}
    for module, path in our_modules().items():
        if layer_of(module) != "cli" or path.stem in ("__init__", "__main__", "main", *shared):
            continue
        bad = [
            n
            for n in imported_names(path.read_text())
            if _under(n, "corpusbeam.cli") and n not in {f"corpusbeam.cli.{s}" for s in shared}
        ]
        if bad:
            found[module] = bad
    assert found == {}


def test_no_test_imports_another_test_module():
    """What two test modules share lives in tests/support/, never in a test module."""

    def test_modules(node: ast.AST) -> list[str]:
        if isinstance(node, ast.Import):
            named = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            named = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            return []
        return [n for n in named if _under(n, "tests") and n.rsplit(".", 1)[-1].startswith("test_")]

    found = {}
    for path in sorted((ROOT / "tests").rglob("*.py")):
        bad = [n for node in ast.walk(ast.parse(path.read_text())) for n in test_modules(node)]
        if bad:
            found[str(path.relative_to(ROOT))] = bad
    assert found == {}
