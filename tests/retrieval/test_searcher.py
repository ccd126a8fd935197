"""Searcher: text, image and vector queries over real folders, embedded by the hash model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference.client import EnvApiKey
from corpusbeam.inference.errors import AuthenticationError
from corpusbeam.retrieval.hits import Hit
from corpusbeam.retrieval.multi import check_mergeable, merge_hits, search_all
from corpusbeam.retrieval.searcher import Searcher, resolve_index_folder
from indexes import build_folder, open_index
from tests.support.endpoints import KEY
from tests.support.folders import D, corpus, flip, make_versioned
from tests.support.images import scene_png


def test_resolve_index_folder_takes_a_folder_or_an_output_dir(float_folder, tmp_path, build_text):
    assert resolve_index_folder(float_folder) == float_folder
    root = make_versioned(tmp_path / "out", build_text, "v20261122T001500Z-3f2a9c")
    assert resolve_index_folder(root) == root / "versions" / "v20261122T001500Z-3f2a9c"
    with Searcher(root) as s:
        assert s.version == "v20261122T001500Z-3f2a9c"
        assert s.name == "out"
        assert s.search("the owl eats mice")[0].text.startswith("the owl eats mice")


@pytest.mark.parametrize(
    ("current", "message"),
    [(None, "neither an index folder"), ("v9", "is missing"), ("../../etc", "not a version name")],
)
def test_resolve_index_folder_refuses_what_is_not_there(tmp_path, current, message):
    (tmp_path / "versions").mkdir()
    if current is not None:
        (tmp_path / "CURRENT").write_text(current)
    with pytest.raises(IndexFolderError, match=message):
        resolve_index_folder(tmp_path)
    with pytest.raises(IndexFolderError, match="no such directory"):
        resolve_index_folder(tmp_path / "nope")


def test_text_query_finds_the_sentence_and_carries_its_metadata(float_folder):
    with Searcher(float_folder) as s:
        hits = s.search("the owl eats mice", k=5)
    assert len(hits) == 5
    top = hits[0]
    assert isinstance(top, Hit)
    assert top.text.startswith("the owl eats mice in the")
    assert top.uri == f"file:///corpus/{top.document_id}.txt"
    assert set(top.metadata) >= {"chunk", "modality", "char_start", "content_hash", "lang", "tag"}
    assert top.index == "texts"
    scores = [h.score for h in hits]
    assert scores == sorted(scores, reverse=True)
    assert set(top.to_dict()) >= {"id", "score", "document_id", "uri", "text", "metadata", "index"}
    assert top.ranks is not None  # hybrid by default: the folder has a lexical index


def test_batches_answer_in_input_order(float_folder):
    queries = ["the owl eats mice", "the dog eats bones", "the parrot eats seeds"]
    with Searcher(float_folder) as s:
        batch = s.search_texts(queries, k=3)
        singles = [s.search(q, k=3) for q in queries]
    assert [[h.id for h in hits] for hits in batch] == [[h.id for h in hits] for hits in singles]
    for q, hits in zip(queries, batch, strict=True):
        assert hits[0].text.startswith(q)


def test_vector_queries_equal_a_direct_folder_search(float_folder):
    folder = open_index(float_folder)
    _, xb, _ = folder.vectors()
    expected = folder.search(xb[:3], 4)
    with Searcher(float_folder) as s:
        hits = s.search_vectors(xb[:3], 4)
        one = s.search(vector=xb[0].tolist(), k=4)
    assert [[h.id for h in row] for row in hits] == expected.I.tolist()
    np.testing.assert_allclose([[h.score for h in row] for row in hits], expected.D, rtol=1e-6)
    assert [h.id for h in one] == expected.I[0].tolist()


def test_image_queries_by_bytes_and_path(image_folder, tmp_path):
    path = tmp_path / "query.png"
    path.write_bytes(scene_png(2))
    with Searcher(image_folder) as s:
        by_bytes = s.search(image=scene_png(1), k=3)
        by_path = s.search_images([path, scene_png(0)], k=1)
    assert by_bytes[0].document_id == "img-1"
    assert by_bytes[0].metadata["modality"] == "image"
    assert by_bytes[0].text == "green ellipse and a line"
    assert [row[0].document_id for row in by_path] == ["img-2", "img-0"]


def test_filters_apply_inside_the_search(float_folder):
    with Searcher(float_folder) as s:
        hits = s.search("the owl eats mice", k=10, filter={"lang": "fr", "year": {"$gte": 2005}})
        assert hits and all(h.metadata["lang"] == "fr" and h.metadata["year"] >= 2005 for h in hits)
        assert s.search("the owl eats mice", filter={"lang": "xx"}) == []
        with pytest.raises(ConfigError, match="no such metadata column"):
            s.search("the owl eats mice", filter={"colour": "red"})


@pytest.mark.parametrize("fixture", ["binary_folder", "int8_folder"])
def test_binary_and_int8_indexes_rescore_with_a_float_query(request, fixture, float_folder):
    folder = request.getfixturevalue(fixture)
    query = "the tiger eats meat"
    with Searcher(float_folder) as exact, Searcher(folder) as s:
        assert s.rescores and s.query_encoding == "float"
        xq = s.embed_texts([query])
        assert xq.dtype == np.float32 and xq.shape == (1, D)
        got = s.search(query, k=7, mode="dense")  # 7 x the rescore factor: all 64 vectors
        want = exact.search(query, k=7, mode="dense")
    # The ranking is exactly the float query's dot product with the stored int8 vectors.
    ids, _, rv = open_index(folder).vectors()
    scores = rv.astype(np.float32) @ (xq[0] / np.linalg.norm(xq[0]))
    assert [h.id for h in got] == ids[np.argsort(-scores, kind="stable")[:7]].tolist()
    assert got[0].id == want[0].id
    # A dot product with int8 vectors scaled back to floats: near the cosine, not equal
    # (the hash model's large components clip at +-127).
    assert 0 < got[0].score <= want[0].score + 0.05


def test_binary_index_without_rescoring_scores_by_hamming(binary_folder):
    with Searcher(binary_folder, rescore=False) as s:
        assert s.query_encoding == "ubinary"
        assert s.score_kind == ("hash", D, "hamming")
        hits = s.search("the tiger eats meat", k=5, mode="dense")
        xq = s.embed_texts(["the tiger eats meat"])
    # 64 sign bits of the hash model are coarse: check against exact Hamming distances.
    ids, xb, _ = open_index(binary_folder).vectors()
    ham = np.unpackbits(xb ^ xq, axis=1).sum(axis=1)
    assert hits[0].score == pytest.approx(1 - 2 * ham.min() / D)
    assert ham[np.searchsorted(ids, hits[0].id)] == ham.min()
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_merge_across_folders_by_score(float_folder, int8_folder, binary_folder, image_folder):
    with (
        Searcher(float_folder) as a,
        Searcher(int8_folder) as b,
        Searcher(binary_folder) as c,
        Searcher(image_folder) as images,
        Searcher(binary_folder, rescore=False) as bits,
    ):
        assert b.score_kind == c.score_kind == ("hash", D, "int8-dot")
        hits = search_all([b, c], "the horse eats hay", k=6)
        assert {h.index for h in hits} == {"texts-int8", "texts-bits"}
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert hits[0].text.startswith("the horse eats hay")
        # Texts and images from the same model merge; the picture wins for a picture.
        mixed = search_all([a, images], image=scene_png(0), k=3)
        assert mixed[0].index == "pictures" and mixed[0].document_id == "img-0"
        with pytest.raises(ConfigError, match="texts-bits"):
            check_mergeable([a, bits])
        with pytest.raises(ConfigError, match="texts-int8"):
            search_all([a, b], "the horse eats hay")


def test_merge_hits_keeps_the_best_k():
    a = [Hit(id=1, score=0.9), Hit(id=2, score=0.5)]
    b = [Hit(id=3, score=0.7)]
    assert [h.id for h in merge_hits([a, b], 2)] == [1, 3]


def test_explicit_endpoint_with_a_key_from_the_environment(float_folder, endpoint, monkeypatch):
    monkeypatch.setenv("SEARCH_TEST_KEY", KEY)
    with Searcher(
        float_folder, endpoint=endpoint.url, credential=EnvApiKey(var="SEARCH_TEST_KEY")
    ) as s:
        assert s.embedder().url == endpoint.url
        assert s.search("the owl eats mice")[0].text.startswith("the owl eats mice")
    monkeypatch.setenv("SEARCH_TEST_KEY", "not-the-key-42")
    with Searcher(
        float_folder, endpoint=endpoint.url, credential=EnvApiKey(var="SEARCH_TEST_KEY")
    ) as s:
        with pytest.raises(AuthenticationError) as err:
            s.search("the owl eats mice")
    assert "not-the-key-42" not in str(err.value) and KEY not in str(err.value)


def test_folder_without_endpoint_answers_vectors_only(tmp_path, doc_client):
    texts = corpus()[:10]
    xb = doc_client.embed_texts(texts, dimensions=D).vectors
    path = tmp_path / "bare"
    meta = {"document_id": [f"d{i}" for i in range(10)], "chunk": [0] * 10, "text": texts}
    build_folder(path, xb, meta, encoding="float", model="hash", config=_quick())
    with Searcher(path) as s:
        assert s.search(vector=xb[3], k=1)[0].text == texts[3]
        with pytest.raises(ConfigError, match="records no endpoint"):
            s.search("anything")


def _quick():
    from indexes import BuildConfig

    return BuildConfig(eval_queries=0)


def test_bad_queries_are_named(float_folder):
    with Searcher(float_folder) as s:
        with pytest.raises(ConfigError, match="exactly one"):
            s.search("a", vector=[0.0] * D)
        with pytest.raises(ConfigError, match="exactly one"):
            s.search()
        with pytest.raises(ConfigError, match="texts"):
            s.search_texts("not a list")
        with pytest.raises(ConfigError, match="xq"):
            s.search_vectors(np.zeros((1, D + 1), np.float32))
        with pytest.raises(ConfigError, match="finite"):
            s.search_vectors(np.full((1, D), np.nan, np.float32))
        with pytest.raises(ConfigError, match="k"):
            s.search("the owl", k=0)


def test_damaged_folders_are_refused(float_folder, tmp_path, build_text):
    broken = tmp_path / "broken"
    shutil.copytree(float_folder, broken)
    part = broken / "parts" / "part-00000.metadata.parquet"
    data = bytearray(part.read_bytes())
    data[100] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(IndexFolderError, match=r"part-00000\.metadata\.parquet fails its sha256"):
        Searcher(broken)
    (broken / "index.faiss").unlink()
    with pytest.raises(IndexFolderError, match=r"index\.faiss is missing"):
        Searcher(broken, verify=False)
    # An output DIR whose CURRENT names a damaged version is refused the same way.
    root = make_versioned(tmp_path / "out", build_text, "v1")
    shutil.copytree(broken, root / "versions" / "v2")
    flip(root, "v2")
    with pytest.raises(IndexFolderError, match="versions/v2"):
        Searcher(root)
