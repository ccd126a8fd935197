"""Package hygiene: public names exist, no Beam, no pickle, one exception hierarchy."""

import ast
import importlib
from pathlib import Path

import pytest

import indexes
from corpusbeam.errors import CorpusbeamError

MODULES = [
    "ann.choose",
    "ann.merge",
    "ann.search",
    "ann.serialize",
    "ann.spec",
    "ann.train",
    "building.assemble",
    "building.evaluate",
    "building.folder",
    "building.rebuild",
    "building.steps",
    "building.tune",
    "building.writer",
    "config",
    "filters",
    "reader",
    "storage.files",
    "storage.ids",
    "storage.layer_reader",
    "storage.layers",
    "storage.manifest",
    "storage.part_files",
    "storage.part_ranges",
    "storage.part_reader",
    "storage.tables",
    "storage.versions",
]
ROOT = Path(indexes.__file__).parent


@pytest.mark.parametrize("name", MODULES)
def test_all_names_exist(name):
    module = importlib.import_module(f"indexes.{name}")
    assert module.__all__ and all(hasattr(module, n) for n in module.__all__)


def test_package_exports():
    assert all(hasattr(indexes, n) for n in indexes.__all__)


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_beam_no_pickle_no_pipeline_imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            assert not name.startswith(("apache_beam", "pickle", "transforms", "pipeline")), name
    assert "allow_pickle=True" not in path.read_text()


def test_library_errors_are_converted(tmp_path):
    """FAISS and pyarrow failures reach the caller as CorpusbeamError subclasses."""
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CorpusbeamError):
        indexes.open_index(tmp_path)
    bad = tmp_path / "x.faiss"
    bad.write_bytes(b"garbage")
    with pytest.raises(CorpusbeamError):
        indexes.read_index(bad, "float")
    with pytest.raises(CorpusbeamError):
        indexes.choose_index(100, 8, "float", factory="IVF4,Bogus")
