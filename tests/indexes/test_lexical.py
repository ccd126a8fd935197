"""The lexical (BM25) index: its tokenizer, scores equal to bm25s's own build, filters
before top-k, the files in the manifest, refusals."""

from __future__ import annotations

import json
import shutil

import bm25s
import numpy as np
import pytest

from indexes import BuildConfig, open_index
from indexes import lexical as lexical_module
from indexes.lexical import build_lexical, open_lexical
from indexes.lexical_tokens import tokenize
from inference.errors import ConfigError, IndexFolderError
from tests.indexes.helpers import build

TEXTS = [
    "the cat sat on the mat",
    "a dog barked at the cat, the cat ran",
    "parseHTTPResponse handles the HTTP response body",
    None,  # an image without caption: indexed, matches nothing
    "un café au lait, très bon",
    "dog dog dog and a bird",
    "os.path.join joins snake_case_names",
    "",
]


def test_identifiers_are_kept_whole_and_split():
    assert tokenize("parseHTTPResponse_v2") == [
        "parsehttpresponse_v2",
        "parse",
        "http",
        "response",
        "v2",
    ]
    assert tokenize("os.path.join") == ["os.path.join", "os", "path", "join"]
    assert tokenize("XMLParser") == ["xmlparser", "xml", "parser"]


def test_accents_fold_and_keep_the_original_and_stopwords_go():
    assert tokenize("Le café") == ["le", "café", "cafe"]
    assert tokenize("the ÉCOLE is naïve") == ["école", "ecole", "naïve", "naive"]


@pytest.mark.parametrize("block", [2, 50_000])
def test_scores_equal_bm25s_building_the_same_tokens(tmp_path, monkeypatch, block):
    monkeypatch.setattr(lexical_module, "_BLOCK", block)  # several blocks, or one
    ids = np.arange(100, 100 + len(TEXTS), dtype=np.int64)
    info = build_lexical(tmp_path, ids, iter(TEXTS))
    assert info["count"] == len(TEXTS) and info["tokenizer"] == "corpusbeam-words-v1"
    index = open_lexical(tmp_path, info)
    reference = bm25s.BM25(method="lucene")
    reference.index([tokenize(t or "") for t in TEXTS], show_progress=False)
    for query in ["cat", "dog bird", "cafe", "http response", "snake_case_names", "join"]:
        terms = sorted(set(tokenize(query)))
        np.testing.assert_allclose(index.scores(query), reference.get_scores(terms), rtol=1e-5)


def test_search_ranks_matching_rows_only_and_pads(tmp_path):
    ids = np.arange(100, 100 + len(TEXTS), dtype=np.int64)
    index = open_lexical(tmp_path, build_lexical(tmp_path, ids, TEXTS))
    res = index.search(["cat", "café", "nothing matches this"], 3)
    assert res.I[0].tolist() == [101, 100, -1]  # "cat" twice in a row beats once
    assert res.D[0, 0] > res.D[0, 1] > 0 and res.D[0, 2] == 0
    assert res.I[1].tolist() == [104, -1, -1]  # "café" finds the accented text
    assert res.I[2].tolist() == [-1, -1, -1]
    assert index.search(["cafe"], 1).I[0, 0] == 104  # and so does the folded spelling
    assert index.search(["parse"], 1).I[0, 0] == 102  # a part of an identifier
    assert index.search(["os.path.join"], 1).I[0, 0] == 106  # the whole dotted name


def test_filters_apply_before_top_k(tmp_path):
    ids = np.arange(100, 100 + len(TEXTS), dtype=np.int64)
    index = open_lexical(tmp_path, build_lexical(tmp_path, ids, TEXTS))
    assert index.search(["cat"], 1).I[0, 0] == 101
    # The best row is not allowed: the next one comes first, not an empty answer.
    res = index.search(["cat"], 1, allowed_ids=np.array([100, 105]))
    assert res.I.tolist() == [[100]]
    res = index.search(["dog"], 5, allowed_ids=np.array([100, 102]))
    assert res.I.tolist() == [[-1] * 5]  # nothing allowed matches


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ConfigError, match="texts"):
        build_lexical(tmp_path, np.arange(3), ["a", "b"])
    index = open_lexical(tmp_path / "x", build_lexical(tmp_path / "x", np.arange(2), ["a", "b"]))
    with pytest.raises(ConfigError, match="k"):
        index.search(["a"], 0)
    with pytest.raises(ConfigError, match="queries"):
        index.search("a", 1)


def test_every_folder_has_one_listed_in_its_manifest(float_folder, metadata):
    folder = open_index(float_folder)
    info = folder.manifest.lexical
    assert info["count"] == len(metadata["text"]) and info["dir"] == "lexical"
    assert "lexical/data.csc.index.npy" in folder.manifest.files
    index = open_lexical(float_folder, info)
    hit = index.search(["passage 1234"], 1).I[0, 0]
    row = folder.metadata().to_pylist()[int(np.searchsorted(index.ids, hit))]
    assert row["id"] == hit and row["text"] == "passage 1234"


def test_a_damaged_or_foreign_lexical_index_is_refused(float_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(float_folder, broken)
    data = broken / "lexical" / "data.csc.index.npy"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(IndexFolderError, match=r"lexical/data\.csc\.index\.npy fails its sha256"):
        open_index(broken)
    info = dict(open_index(float_folder).manifest.lexical, tokenizer="other-v9")
    with pytest.raises(IndexFolderError, match="tokenizer 'other-v9'"):
        open_lexical(float_folder, info)
    shutil.rmtree(broken / "lexical")
    with pytest.raises(IndexFolderError, match="missing"):
        open_lexical(broken, open_index(float_folder).manifest.lexical)


def test_a_folder_can_be_built_without_one(tmp_path, xb, metadata):
    m = build(tmp_path / "f", xb[:200], {k: v[:200] for k, v in metadata.items()},
              config=BuildConfig(eval_queries=0, lexical=False))  # fmt: skip
    assert m.lexical is None and not (tmp_path / "f" / "lexical").exists()
    assert json.loads((tmp_path / "f" / "manifest.json").read_text())["lexical"] is None
