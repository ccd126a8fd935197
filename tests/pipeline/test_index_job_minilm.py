"""Real text through the index job and ``Searcher``: MiniLM embeds standard-library
docstring passages, and text queries' top 10 from a ubinary folder (default options:
rescored) and an int8 folder are compared with exact float search's over the same
passages (the float folder, ``IDMap2,Flat``)."""

from __future__ import annotations

import ast
import json
import random
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from corpusbeam.retrieval.searcher import Searcher
from pipeline.index_job import run_index_job
from tests.support.jobs import job

# Three index jobs with MiniLM: about 40 s on a quiet machine.
pytestmark = [pytest.mark.slow, pytest.mark.minilm, pytest.mark.timeout(900)]

N_PASSAGES, N_QUERIES = 400, 40


def stdlib_passages(limit: int) -> list[str]:
    """Docstring paragraphs of 80-600 characters, mostly letters, from the standard
    library (on every machine with Python), in file order, deduplicated."""
    root = Path(sysconfig.get_paths()["stdlib"])
    seen: set[str] = set()
    out: list[str] = []
    for f in sorted(root.rglob("*.py")):
        parts = f.relative_to(root).parts
        if any(p in ("test", "tests", "idlelib", "site-packages") for p in parts):
            continue
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
            doc = ast.get_docstring(node) if isinstance(node, kinds) else None
            for para in (doc or "").split("\n\n"):
                p = " ".join(para.split())
                letters = sum(c.isalpha() for c in p)
                if 80 <= len(p) <= 600 and letters > 0.7 * len(p) and p not in seen:
                    seen.add(p)
                    out.append(p)
                    if len(out) >= limit:
                        return out
    return out


def first_sentence(text: str) -> str:
    m = re.match(r"(.{20,}?[.!?])(\s|$)", text)
    return m.group(1) if m else text[:200]


def test_binary_and_int8_folders_keep_float_searchs_top_10(tmp_path, minilm_endpoint):
    pool = stdlib_passages(N_PASSAGES + N_QUERIES)
    random.Random(0).shuffle(pool)
    passages = pool[:N_PASSAGES]
    queries = [first_sentence(p) for p in pool[N_PASSAGES:]]
    corpus = tmp_path / "passages.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": f"p{i}", "text": t}) + "\n" for i, t in enumerate(passages))
    )
    url = minilm_endpoint.url
    top = {}
    for encoding in ("float", "ubinary", "int8"):
        config = job(corpus, tmp_path / encoding, endpoint=url, encoding_format=encoding)
        result = run_index_job(config)
        assert result.exit_code == 0 and result.report["counts"]["indexed"] == N_PASSAGES
        with Searcher(result.folder, endpoint=url) as s:
            top[encoding] = [{h.id for h in hits} for hits in s.search_texts(queries, k=10)]
            manifest = s.folder.manifest
        if encoding == "ubinary":
            assert manifest.rescore is not None and manifest.wire_encoding == "float"
            assert manifest.recall["unrescored"] < manifest.recall["value"]
    assert top["float"][0] and all(len(t) == 10 for t in top["float"])

    def recall(encoding: str) -> float:
        pairs = zip(top[encoding], top["float"], strict=True)
        return float(np.mean([len(a & b) / 10 for a, b in pairs]))

    print(json.dumps({"recall_at_10": {e: recall(e) for e in ("ubinary", "int8")}}))
    assert recall("ubinary") >= 0.95
    assert recall("int8") >= 0.98
