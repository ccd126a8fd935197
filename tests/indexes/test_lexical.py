"""The lexical (BM25) index: its tokenizer, scores equal to bm25s's own build, segments
that rank like one, removed and re-added ids, filters before top-k, the files in the
manifest, refusals."""

from __future__ import annotations

import json
import shutil

import bm25s
import numpy as np
import pytest

from corpusbeam.errors import ConfigError, IndexFolderError
from indexes import BuildConfig, open_index
from indexes.lexical import index as lexical_module
from indexes.lexical import segment as segments_module
from indexes.lexical.analyzer import tokenize
from indexes.lexical.index import build_lexical, encode_segment, lexical_info, open_lexical
from indexes.storage.manifest import Manifest
from tests.support.indexes import build
from tests.support.manifests import small_manifest

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


@pytest.mark.parametrize(("block", "segment_rows"), [(2, 100), (50_000, 100), (50_000, 3)])
def test_scores_equal_bm25s_building_the_same_tokens(tmp_path, monkeypatch, block, segment_rows):
    monkeypatch.setattr(segments_module, "_BLOCK", block)  # several blocks, or one
    monkeypatch.setattr(lexical_module, "_BLOCK_ROWS", 2)  # summed 2 rows at a time
    ids = np.arange(100, 100 + len(TEXTS), dtype=np.int64)
    info = build_lexical(tmp_path, ids, iter(TEXTS), segment_rows=segment_rows)
    assert info["count"] == len(TEXTS) and info["tokenizer"] == "corpusbeam-words-v1"
    assert len(info["segments"]) == -(-len(TEXTS) // segment_rows)  # 1 or 3 segments
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
    assert "lexical/seg-00000/rows.npy" in folder.manifest.files
    index = open_lexical(float_folder, info)
    hit = index.search(["passage 1234"], 1).I[0, 0]
    row = folder.metadata().to_pylist()[int(np.searchsorted(index.ids, hit))]
    assert row["id"] == hit and row["text"] == "passage 1234"


def test_a_damaged_or_foreign_lexical_index_is_refused(float_folder, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(float_folder, broken)
    data = broken / "lexical" / "seg-00000" / "tf.npy"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(IndexFolderError, match=r"lexical/seg-00000/tf\.npy fails its sha256"):
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


def write_segments(folder, parts, removed=None):
    """Write the segments ``parts`` (``[(name, ids, texts)]``, oldest first) and the removed
    ids (one ``.npy`` file) into ``folder``; returns the manifest's lexical entry."""
    entries = []
    for name, ids, texts in parts:
        entry, files = encode_segment(name, np.asarray(ids, dtype=np.int64), texts)
        for rel, blob in files.items():
            assert rel.startswith(f"lexical/{name}/")
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(blob)
        entries.append(entry)
    files = []
    if removed is not None:
        np.save(folder / "lexical" / "removed-00001.npy", np.asarray(removed, dtype=np.int64))
        files.append("lexical/removed-00001.npy")
    return lexical_info(entries, files)


@pytest.fixture(scope="module")
def corpus():
    """2,000 texts of 3 to 40 words drawn (Zipf-like) from 300 words, with ids."""
    rng = np.random.default_rng(7)
    words = [f"w{i}" for i in range(300)]
    p = 1 / np.arange(1, 301)
    p /= p.sum()
    texts = [" ".join(rng.choice(words, size=rng.integers(3, 41), p=p)) for _ in range(2000)]
    texts[5] = texts[17] = None  # images without caption
    ids = np.sort(rng.choice(1 << 40, size=2000, replace=False)).astype(np.int64)
    queries = [" ".join(rng.choice(words, size=rng.integers(1, 6))) for _ in range(40)]
    return ids, texts, [*queries, "w0", "w299 w298", "nothing"]


@pytest.mark.parametrize("block_rows", [1 << 17, 128])
def test_eight_random_segments_rank_like_one(tmp_path, corpus, monkeypatch, block_rows):
    # Segments larger than the block are summed a block of rows at a time: same scores.
    monkeypatch.setattr(lexical_module, "_BLOCK_ROWS", block_rows)
    ids, texts, queries = corpus
    one = open_lexical(tmp_path / "one", write_segments(tmp_path / "one", [("s", ids, texts)]))
    seg = np.random.default_rng(3).integers(0, 8, size=len(ids))  # rows dealt at random
    parts = [
        (f"part-{s:05d}", ids[seg == s], [t for t, g in zip(texts, seg, strict=True) if g == s])
        for s in range(8)
    ]
    info = write_segments(tmp_path / "eight", parts)
    assert info["count"] == len(ids) and len(info["segments"]) == 8
    eight = open_lexical(tmp_path / "eight", info)
    assert eight.count == one.count == len(ids)
    a, b = one.search(queries, 20), eight.search(queries, 20)
    assert (a.I[:, 0] >= 0).sum() > 30  # the queries do match
    np.testing.assert_array_equal(a.I, b.I)
    np.testing.assert_allclose(a.D, b.D, rtol=1e-5, atol=1e-5)
    allowed = np.sort(ids[::3])  # a filter across the segments, applied before top-k
    a, b = (
        one.search(queries, 20, allowed_ids=allowed),
        eight.search(queries, 20, allowed_ids=allowed),
    )
    np.testing.assert_array_equal(a.I, b.I)
    assert np.isin(b.I[b.I >= 0], allowed).all() and (b.I[:, :5] >= 0).sum() > 100


def test_removed_ids_never_match(tmp_path, corpus):
    ids, texts, queries = corpus
    cuts = [(0, 700), (700, 1400), (1400, 2000)]
    parts = [(f"part-{s:05d}", ids[a:b], texts[a:b]) for s, (a, b) in enumerate(cuts)]
    full = open_lexical(tmp_path / "full", write_segments(tmp_path / "full", parts))
    before = full.search(queries, 10)
    removed = np.unique(before.I[before.I >= 0])[::2]  # half of every hit, in all segments
    info = write_segments(tmp_path / "less", parts, removed=removed)
    assert info["removed"] == ["lexical/removed-00001.npy"]
    less = open_lexical(tmp_path / "less", info)
    assert less.count == len(ids) - removed.size
    after = less.search(queries, 10)
    assert not np.isin(after.I, removed).any()
    kept = before.I[(before.I >= 0) & ~np.isin(before.I, removed)]
    assert np.isin(kept, after.I).all()  # the others still match
    assert not np.isin(removed, less.ids).any() and less.ids.size == less.count


@pytest.mark.parametrize("listed_removed", [False, True])
def test_an_id_re_added_in_a_later_segment_matches_by_its_new_text_only(tmp_path, listed_removed):
    base = [("part-00000", [1, 5, 9], ["cat on a mat", "cat and mouse", "gone cat"])]
    delta = [("delta-00000", [5, 7], ["dog and mouse", "new dog"])]
    # 9 is deleted; 5 changed (listed among the removed ids or not: its new row counts)
    removed = [9, 5] if listed_removed else [9]
    index = open_lexical(tmp_path, write_segments(tmp_path, base + delta, removed=removed))
    assert index.count == 3 and index.ids.tolist() == [1, 5, 7]
    assert index.search(["cat"], 5).I.tolist() == [[1, -1, -1, -1, -1]]
    assert index.search(["dog"], 5).I[0].tolist()[:2] in ([5, 7], [7, 5])
    assert index.search(["mouse"], 5).I.tolist() == [[5, -1, -1, -1, -1]]  # once: its new row
    assert index.search(["gone"], 5).I.tolist() == [[-1] * 5]
    # An id only a delta segment holds, then removed, never matches either.
    index = open_lexical(tmp_path, write_segments(tmp_path, base + delta, removed=[7, 9]))
    assert index.search(["dog"], 5).I.tolist() == [[5, -1, -1, -1, -1]]


def test_empty_texts_and_segments_match_nothing(tmp_path):
    info = write_segments(
        tmp_path, [("a", [1, 2, 3], [None, "", "  ,. "]), ("b", [], []), ("c", [4], ["owl"])]
    )
    assert [s["terms"] for s in info["segments"]] == [0, 0, 1]
    index = open_lexical(tmp_path, info)
    assert index.count == 4
    assert index.search(["owl", "anything"], 2).I.tolist() == [[4, -1], [-1, -1]]


def test_a_missing_segment_file_is_named(tmp_path):
    info = write_segments(tmp_path, [("part-00000", [1], ["owl"]), ("part-00001", [2], ["bat"])])
    (tmp_path / "lexical" / "part-00001" / "terms.npy").unlink()
    with pytest.raises(IndexFolderError, match=r"lexical/part-00001/terms\.npy: .* missing"):
        open_lexical(tmp_path, info)
    info = write_segments(tmp_path, [("part-00000", [1], ["owl"])], removed=[1])
    (tmp_path / "lexical" / "removed-00001.npy").unlink()
    with pytest.raises(IndexFolderError, match=r"removed-00001\.npy: .* missing"):
        open_lexical(tmp_path, info)


def test_the_manifest_entry_round_trips(tmp_path, corpus):
    ids, texts, queries = corpus
    info = write_segments(
        tmp_path, [("part-00000", ids[:900], texts[:900]), ("delta-00000", ids[900:], texts[900:])],
        removed=ids[:10],
    )  # fmt: skip
    assert set(info) == {"dir", "tokenizer", "k1", "b", "count", "terms", "postings",
                         "segments", "removed"}  # fmt: skip
    assert set(info["segments"][0]) == {"name", "dir", "count", "length", "terms", "postings",
                                        "blocks"}  # fmt: skip
    avgdl = info["segments"][0]["length"] / 900
    assert info["segments"][0]["blocks"] == {"size": 128, "k1": 1.5, "b": 0.75, "avgdl": avgdl}
    assert info["segments"][1]["dir"] == "lexical/delta-00000"
    m = small_manifest(dimensions=4, count=2000, lexical=info)
    back = Manifest.from_json(m.to_json()).lexical
    assert back == info
    a = open_lexical(tmp_path, info).search(queries, 10)
    b = open_lexical(tmp_path, back).search(queries, 10)
    np.testing.assert_array_equal(a.I, b.I)


def test_bad_segments_are_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match="ids"):
        encode_segment("part-00000", np.array([3, 1]), ["a", "b"])
    with pytest.raises(ConfigError, match="name"):
        encode_segment("../x", np.array([1]), ["a"])
    with pytest.raises(ConfigError, match="texts"):
        encode_segment("part-00000", np.array([1, 2]), ["a"])
    entry, _ = encode_segment("s", np.array([1]), ["a"])
    with pytest.raises(ConfigError, match="segments"):
        lexical_info([entry, entry], [])
    (tmp_path / "lexical").mkdir()  # a folder of the bm25s format this version replaced
    with pytest.raises(IndexFolderError, match="older format"):
        open_lexical(tmp_path, {"dir": "lexical", "tokenizer": "corpusbeam-words-v1"})
