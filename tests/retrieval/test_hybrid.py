"""Search modes on real folders embedded by the hash model: a rare identifier dense search
misses, found by lexical and hybrid; filters on lexical hits; RRF against a hand
computation; the mode named in every refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.hybrid import rrf
from corpusbeam.retrieval.multi import search_all
from corpusbeam.retrieval.searcher import Searcher
from indexes import BuildConfig, build_folder
from tests.support.folders import D, corpus, text_metadata
from tests.support.images import scene_png

RARE = "ERR_QX4471"
NOTES = (
    "release notes for the spring version: the exporter was rewritten in a streaming style, "
    "logging is quieter by default, retries back off with jitter, the dashboard shows queue "
    f"depth, the {RARE} code now appears when a disk quota is exceeded during a nightly export "
    "of large tables, and the settings page lists every scheduled job with its owner and next run"
)
ANIMALS = ["cat", "dog", "horse", "parrot", "tiger", "owl", "rabbit", "salmon"]
TEXTS = [*corpus(), NOTES, *(f"the error code shown by the {a} exporter" for a in ANIMALS)]


@pytest.fixture(scope="module")
def notes_folder(tmp_path_factory, doc_client) -> Path:
    xb = doc_client.embed_texts(
        TEXTS, input_type="document", dimensions=D, encoding_format="float"
    ).vectors
    path = tmp_path_factory.mktemp("notes") / "notes"
    build_folder(
        path,
        xb,
        text_metadata(TEXTS),
        encoding="float",
        model="hash",
        dimensions=D,
        endpoint="local://hash",
        api_version="2024-05-01-preview",
        input_type="document",
        config=BuildConfig(eval_queries=0),
    )
    return path


def test_a_rare_identifier_dense_misses_is_found_by_lexical_and_hybrid(notes_folder):
    query = f"the {RARE} code"
    with Searcher(notes_folder) as s:
        assert s.default_mode == "hybrid"
        dense = s.search(query, k=10, mode="dense")
        lexical = s.search(query, k=10, mode="lexical")
        hybrid = s.search(query, k=10)  # the default
    assert all(RARE not in h.text for h in dense)  # the common words win the embedding
    assert RARE in lexical[0].text and lexical[0].ranks == {"lexical": 1}
    found = [h for h in hybrid if RARE in h.text]
    assert len(found) == 1 and found[0].ranks["lexical"] == 1
    assert found[0].ranks.get("dense", 11) > 10  # it came in through the lexical ranking


def test_rrf_matches_a_hand_computation():
    fused = rrf({"dense": [10, 20, 30, -1], "lexical": [30, 40, 50]}, 5, rrf_k=60)
    want = {
        30: 1 / 63 + 1 / 61,  # dense 3, lexical 1
        10: 1 / 61,
        20: 1 / 62,
        40: 1 / 62,
        50: 1 / 63,
    }
    assert [i for i, _, _ in fused] == [30, 10, 20, 40, 50]  # ties: best rank, then id
    for i, score, _ in fused:
        assert score == pytest.approx(want[i])
    assert fused[0][2] == {"dense": 3, "lexical": 1} and fused[1][2] == {"dense": 1}
    weighted = rrf({"dense": [1, 2], "lexical": [2, 1]}, 2, rrf_k=1, weights={"dense": 3})
    # 1: 3/2 + 1/3, 2: 3/3 + 1/2
    assert [(i, round(s, 6)) for i, s, _ in weighted] == [(1, 1.833333), (2, 1.5)]
    with pytest.raises(ConfigError, match="weights"):
        rrf({"dense": [1]}, 1, weights={"sparse": 1.0})


def test_hybrid_scores_by_rrf_are_rrf_of_the_two_rankings(notes_folder):
    query = "the owl eats mice"
    with Searcher(notes_folder) as s:
        dense = s.search(query, k=100, mode="dense")
        lexical = s.search(query, k=100, mode="lexical")
        hybrid = s.search(query, k=8, mode="hybrid", fusion="rrf")
    rank_d = {h.id: r for r, h in enumerate(dense, 1)}
    rank_l = {h.id: r for r, h in enumerate(lexical, 1)}
    for h in hybrid:
        want = sum(1 / (60 + ranks[h.id]) for ranks in (rank_d, rank_l) if h.id in ranks)
        assert h.score == pytest.approx(want)
        assert h.ranks == {
            n: ranks[h.id] for n, ranks in (("dense", rank_d), ("lexical", rank_l)) if h.id in ranks
        }
    assert hybrid[0].text.startswith("the owl eats mice")


def test_filters_restrict_lexical_hits(notes_folder):
    with Searcher(notes_folder) as s:
        everything = s.search("the error code", k=20, mode="lexical")
        french = s.search("the error code", k=20, mode="lexical", filter={"lang": "fr"})
        hybrid = s.search("the error code", k=20, filter={"lang": "fr"})
    assert {h.metadata["lang"] for h in everything} == {"en", "fr"}
    assert french and {h.metadata["lang"] for h in french} == {"fr"}
    assert [h.id for h in french] == [h.id for h in everything if h.metadata["lang"] == "fr"]
    assert {h.metadata["lang"] for h in hybrid} == {"fr"}


def test_modes_are_checked_and_named(notes_folder, tmp_path, doc_client):
    with Searcher(notes_folder) as s:
        with pytest.raises(ConfigError, match="'fuzzy'"):
            s.search("a", mode="fuzzy")
        with pytest.raises(ConfigError, match="dense only"):
            s.search(vector=[0.1] * D, mode="lexical")
        with pytest.raises(ConfigError, match="dense only"):
            search_all([s], image=scene_png(1), mode="hybrid")
        assert len(s.search(image=scene_png(1), k=3, mode="dense")) == 3
    xb = doc_client.embed_texts(["a b", "c d"], dimensions=D, encoding_format="float").vectors
    build_folder(
        tmp_path / "old",
        xb,
        text_metadata(["a b", "c d"]),
        encoding="float",
        model="hash",
        dimensions=D,
        endpoint="local://hash",
        config=BuildConfig(eval_queries=0, lexical=False),
    )
    with Searcher(tmp_path / "old") as old:
        assert old.default_mode == "dense"
        assert old.search("a b", k=1)[0].ranks is None
        with pytest.raises(ConfigError, match="no lexical index"):
            old.search("a b", mode="hybrid")
