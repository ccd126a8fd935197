"""The layering, written down: which package may import which.

    cli ──────────────► pipeline ──► transforms ──► indexes ──► inference
     │                                    │                        ▲
     └──► retrieval ──────────────────────┼──► indexes, inference  │
                                          └────────────────────────┘

Data flows one way, down. ``inference`` (the wire protocol) and ``indexes`` (FAISS) import
no Beam; ``retrieval`` (query time) imports no Beam and nothing of the job; ``transforms``
talks HTTP only through ``inference.client``; nothing imports ``cli``. Inside
``inference``, the client, the codecs and the HTTP toolkit know nothing of the reference
endpoint. Every import counts, including those inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OURS = ("cli", "indexes", "inference", "pipeline", "retrieval", "transforms")

# package -> the packages (ours) and libraries it must never import
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "inference": (
        "apache_beam",
        "cli",
        "indexes",
        "pipeline",
        "retrieval",
        "transforms",
        "faiss",
    ),
    "indexes": ("apache_beam", "cli", "pipeline", "retrieval", "transforms", "httpx"),
    "transforms": ("cli", "pipeline", "retrieval", "httpx", "starlette", "uvicorn"),
    "pipeline": ("cli", "retrieval", "starlette", "uvicorn"),
    "retrieval": ("apache_beam", "cli", "pipeline", "transforms"),
    "cli": ("apache_beam",),  # commands reach Beam only through pipeline, inside run()
}
# Within inference: these modules know nothing of the reference endpoint.
INFERENCE_BELOW_SERVER = ("inference/client", "inference/asgi", "inference/codec.py")


def imported_names(source: str) -> set[str]:
    """Every module named by an import statement anywhere in ``source``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def violations(package: str, source: str) -> list[str]:
    """The imports in ``source`` (a module of ``package``) that break the layering."""
    bad = []
    for name in sorted(imported_names(source)):
        top = name.split(".", 1)[0]
        if top in FORBIDDEN[package]:
            bad.append(name)
    return bad


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_back_edges(package):
    found = {
        str(path.relative_to(ROOT)): bad
        for path in modules(package)
        if (bad := violations(package, path.read_text()))
    }
    assert found == {}, f"{package} imports what sits above it: {found}"


def test_inference_knows_nothing_of_the_reference_endpoint():
    found = {}
    for prefix in INFERENCE_BELOW_SERVER:
        for path in sorted(ROOT.glob(prefix + ("" if prefix.endswith(".py") else "/**/*.py"))):
            bad = [n for n in imported_names(path.read_text()) if n.startswith("inference.server")]
            if bad:
                found[str(path.relative_to(ROOT))] = bad
    assert found == {}


@pytest.mark.parametrize(
    ("package", "source"),
    [
        ("indexes", "import apache_beam as beam"),
        ("inference", "def f():\n    from indexes.build import train_index\n"),
        ("retrieval", "from pipeline.index_job import run_index_job"),
        ("transforms", "import httpx"),
        ("pipeline", "from retrieval.searcher import Searcher"),
        ("cli", "import apache_beam"),
    ],
)
def test_a_back_edge_is_caught(package, source):
    """The check above is not vacuous: each kind of back edge, even inside a function."""
    assert violations(package, source)


def test_every_package_is_covered():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - {"tests", "benchmarks"}
    assert packages == set(OURS) == set(FORBIDDEN)


def test_commands_never_import_each_other():
    """Shared flags live in cli/options.py, the index job's live display in cli/progress.py;
    a command module imports no other command."""
    shared = ("options", "progress")
    found = {}
    for path in modules("cli"):
        if path.stem in ("__init__", "__main__", "main", *shared):
            continue
        bad = [
            n
            for n in imported_names(path.read_text())
            if n.startswith("cli") and n not in {f"cli.{s}" for s in shared}
        ]
        if bad:
            found[path.name] = bad
    assert found == {}
