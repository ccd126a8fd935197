"""What a RAG application asks of search, on tiny folders embedded by the hash model:
grouping by document, snippets, MMR diversity and the query-embedding cache in the library;
paging across a version swap, expired and foreign cursors, grouping and the cache's
metrics through the service over loopback HTTP."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from corpusbeam.asgi.prometheus import parse_metrics
from corpusbeam.errors import ConfigError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.retrieval.mmr import candidate_vectors, mmr
from corpusbeam.retrieval.paging import CursorExpiredError, KeptVersions
from corpusbeam.retrieval.results import PageOptions, search_page
from corpusbeam.retrieval.searcher import Searcher
from corpusbeam.retrieval.service.config import ServiceConfig
from corpusbeam.retrieval.service.run import running_service
from corpusbeam.retrieval.snippets import snippet
from tests.support.folders import corpus, flip, make_versioned

QUERY = "the rabbit eats carrots in the garden"


@pytest.fixture(scope="module")
def searcher(float_folder):
    with Searcher(float_folder, query_cache=8) as s:
        yield s


# ---- the library -----------------------------------------------------------------


def test_grouping_gives_the_best_documents_with_their_chunks_and_counts(searcher):
    plain = search_page([searcher], QUERY, options=PageOptions(k=64)).hits
    page = search_page([searcher], QUERY, options=PageOptions(k=3, group=True, per_document=1))
    docs = [g.document_id for g in page.groups]
    first_seen = list(dict.fromkeys(h.document_id for h in plain))
    assert docs == first_seen[:3]  # a document ranks where its best chunk does
    for g in page.groups:
        assert g.count == 2  # every document has two chunks, both among the candidates
        assert len(g.hits) == 1 and g.hits[0].document_id == g.document_id
        assert g.score == max(h.score for h in plain if h.document_id == g.document_id)
    assert [h.document_id for h in page.hits] == docs
    two = search_page([searcher], QUERY, options=PageOptions(k=3, group=True))
    assert all(len(g.hits) == 2 for g in two.groups)  # per_document 3, two chunks each


def test_snippets_choose_the_best_window_and_mark_query_terms_not_stopwords():
    text = " ".join(["filler words about nothing"] * 30)
    text += " the rabbit in the garden eats carrots daily. " + " ".join(["more filler"] * 30)
    s = snippet(text, QUERY, words=12)
    marked = [s.text[a:b].lower() for a, b in s.highlights]
    assert {"rabbit", "garden", "eats", "carrots"} <= set(marked)
    assert "the" not in marked and "in" not in marked  # stopwords are never marked
    assert text[s.start : s.end] == s.text and s.start > 0 and s.end < len(text)
    short = snippet("Rabbits eat the carrot.", "rabbit carrots")
    assert short.text == "Rabbits eat the carrot."  # a short chunk is its own window
    assert [short.text[a:b] for a, b in short.highlights] == ["Rabbits", "carrot"]


def test_page_snippets_are_added_to_hits(searcher):
    page = search_page([searcher], QUERY, options=PageOptions(k=2, snippet=5))
    sn = page.hits[0].snippet
    assert sn is not None and sn["highlights"]
    assert page.hits[0].to_dict()["snippet"] == sn


def test_mmr_off_is_the_plain_ranking_and_on_spreads_the_hits(searcher):
    plain = search_page([searcher], QUERY, mode="dense", options=PageOptions(k=8))
    off = search_page([searcher], QUERY, mode="dense", options=PageOptions(k=8, diversity=0.0))
    assert [h.id for h in off.hits] == [h.id for h in plain.hits]
    on = search_page([searcher], QUERY, mode="dense", options=PageOptions(k=8, diversity=0.7))
    assert on.hits[0].id == plain.hits[0].id and [h.id for h in on.hits] != [
        h.id for h in plain.hits
    ]

    def redundancy(hits) -> float:  # mean of each hit's largest cosine to those before it
        xb = candidate_vectors(searcher.folder, np.asarray([h.id for h in hits]))
        sims = xb @ xb.T
        return float(np.mean([sims[i, :i].max() for i in range(1, len(hits))]))

    assert redundancy(on.hits) < redundancy(plain.hits)
    # Two copies of one vector and a distinct one: MMR takes the distinct one second.
    xb = np.asarray([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    assert mmr(np.asarray([1.0, 0.9, 0.8]), xb, 3, diversity=0.0) == [0, 1, 2]
    assert mmr(np.asarray([1.0, 0.9, 0.8]), xb, 3, diversity=0.5) == [0, 2, 1]
    with pytest.raises(ConfigError, match="diversity"):
        PageOptions(diversity=1.5)


def test_the_query_cache_embeds_a_repeated_query_once(searcher):
    cache = searcher.embedder().cache
    hits0, misses0 = cache.hits, cache.misses
    a = searcher.embed_texts(["a query never seen"])
    b = searcher.embed_texts(["a query never seen"])
    assert np.array_equal(a, b)
    assert (cache.hits - hits0, cache.misses - misses0) == (1, 1)
    for i in range(10):  # more than its 8 entries: the oldest goes
        searcher.embed_texts([f"query {i}"])
    assert len(cache) == 8


def test_kept_versions_expire_by_count_and_by_age():
    now = [0.0]
    kept = KeptVersions(2, 60, clock=lambda: now[0])
    for v in ("v1", "v2", "v3"):
        kept.retire(v, v.upper())
    assert kept.get("v3") == "V3" and kept.get("v2") == "V2"
    with pytest.raises(CursorExpiredError, match="only the 2 most recent"):
        kept.get("v1")
    now[0] = 61
    with pytest.raises(CursorExpiredError, match="replaced more than 60 s ago"):
        kept.get("v3")


# ---- the service -----------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint():
    """The hash model behind a local endpoint of the test's own, to count its requests."""
    with running_endpoint(EndpointConfig(model="hash")) as ep:
        yield ep


@pytest.fixture(scope="module")
def service(tmp_path_factory, build_text, endpoint):
    root = make_versioned(tmp_path_factory.mktemp("rag") / "out", build_text, "v1", tag="v1")
    config = ServiceConfig(poll_interval=0, keep_versions=1, query_cache=16)
    with running_service([root], config=config, endpoint=endpoint.url) as svc:
        with httpx.Client(base_url=svc.url, timeout=30) as http:
            yield svc, http, root


def _publish(root, build_text, version: str, live) -> None:
    # Another text for every id: a page read from the new version would show it.
    build_text(root / "versions" / version, tag=version, texts=corpus()[::-1])
    flip(root, version)
    assert live.refresh()


def test_paging_across_a_swap_neither_repeats_nor_skips(service, build_text):
    svc, http, root = service
    body = {"query": QUERY, "k": 7}
    first = http.post("/search", json=body).json()
    assert first["indexes"][0]["version"] == "v1" and first["mode"] == "hybrid"
    _publish(root, build_text, "v2", svc.indexes[0])
    pages, cursor = [first], first["next_cursor"]
    while cursor:
        r = http.post("/search", json={**body, "cursor": cursor})
        assert r.status_code == 200, r.text
        pages.append(r.json())
        cursor = pages[-1]["next_cursor"]
    got = [h["id"] for p in pages for h in p["hits"]]
    with Searcher(root / "versions" / "v1") as v1:  # one ranking of the pinned version
        want = [h.id for h in v1.search_texts([QUERY], 64)[0]]
    assert got == want  # every hit once, in order: none repeated, none skipped
    assert {h["metadata"]["tag"] for p in pages for h in p["hits"]} == {"v1"}
    assert {p["indexes"][0]["version"] for p in pages} == {"v1"}
    fresh = http.post("/search", json=body).json()
    assert fresh["indexes"][0]["version"] == "v2"

    # A cursor for another query is refused; a made-up one too.
    other = http.post("/search", json={**body, "query": "owls", "cursor": first["next_cursor"]})
    assert other.status_code == 400 and other.json()["error"]["code"] == "invalid_cursor"
    bad = http.post("/search", json={**body, "cursor": "not-a-cursor"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_cursor"

    # keep_versions=1: after one more swap, v1 is let go and its cursors expire.
    _publish(root, build_text, "v3", svc.indexes[0])
    gone = http.post("/search", json={**body, "cursor": first["next_cursor"]})
    assert gone.status_code == 410, gone.text
    err = gone.json()["error"]
    assert err["code"] == "cursor_expired" and "v1" in err["message"]
    assert "most recent" in err["message"]


def test_grouped_answers_through_the_service(service):
    _, http, _ = service
    r = http.post("/search", json={"query": QUERY, "k": 3, "group": True, "per_document": 1})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["groups"]) == 3 and all(g["count"] == 2 for g in body["groups"])
    assert [h["document_id"] for h in body["hits"]] == [g["document_id"] for g in body["groups"]]
    nxt = http.post(
        "/search",
        json={
            "query": QUERY,
            "k": 3,
            "group": True,
            "per_document": 1,
            "cursor": body["next_cursor"],
        },
    ).json()
    assert not {g["document_id"] for g in nxt["groups"]} & {
        g["document_id"] for g in body["groups"]
    }
    bad = http.post("/search", json={"query": QUERY, "diversity": 2})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "diversity"


def test_pages_keep_the_requests_fusion_and_a_cursor_refuses_another(service):
    _, http, _ = service
    body = {"query": QUERY, "k": 3, "group": True, "fusion": {"method": "rrf", "rrf_k": 20}}
    first = http.post("/search", json=body).json()
    want = {"method": "rrf", "weights": {"dense": 1.0, "lexical": 1.0}, "tuned": False}
    assert first["mode"] == "hybrid" and first["fusion"] == {**want, "rrf_k": 20}
    nxt = http.post("/search", json={**body, "cursor": first["next_cursor"]})
    assert nxt.status_code == 200, nxt.text
    assert nxt.json()["fusion"] == first["fusion"] and len(nxt.json()["groups"]) == 3
    # The same cursor with another fusion (or the folder's, by leaving it out) is refused.
    for fusion in ("convex", {"method": "rrf", "rrf_k": 60}, None):
        other = {**body, "fusion": fusion, "cursor": first["next_cursor"]}
        r = http.post("/search", json=other)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_cursor", fusion
    dense = http.post("/search", json={"query": QUERY, "k": 3, "mode": "dense", "group": True})
    assert dense.json()["fusion"] is None


def test_a_repeated_query_is_answered_from_the_cache(service, endpoint):
    _, http, _ = service

    def counts() -> tuple[float, float, float]:
        m = parse_metrics(http.get("/metrics").text)
        ep = parse_metrics(httpx.get(f"{endpoint.url}/metrics").text)
        sent = sum(v for k, v in ep.items() if k.startswith("corpusbeam_inputs_total"))
        return (
            m["corpusbeam_query_cache_hits_total"],
            m["corpusbeam_query_cache_misses_total"],
            sent,
        )

    body = {"query": "a parrot eats seeds in a forest", "k": 3}
    before = counts()
    assert http.post("/search", json=body).status_code == 200
    mid = counts()
    assert http.post("/search", json=body).status_code == 200
    after = counts()
    assert mid[1] - before[1] == 1 and mid[2] - before[2] == 1  # a miss, sent to embed
    assert after[0] - mid[0] == 1 and after[2] == mid[2]  # a hit: the endpoint saw nothing


def test_corpusbeam_search_pages_groups_and_shows_snippets(float_folder, capsys):
    from corpusbeam.cli.main import main

    argv = ["search", str(float_folder), QUERY, "-k", "2", "--group", "--snippet", "4", "--json"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(first["groups"]) == 2 and first["groups"][0]["count"] == 2
    assert all("snippet" in h for h in first["hits"]) and first["next_cursor"]
    assert first["mode"] == "hybrid" and first["fusion"]["method"] == "convex"
    assert main([*argv, "--cursor", first["next_cursor"]]) == 0
    second = json.loads(capsys.readouterr().out)
    seen = {g["document_id"] for g in first["groups"]}
    assert len(second["groups"]) == 2 and not seen & {g["document_id"] for g in second["groups"]}


def test_local_queries_embedded_in_process_equal_the_endpoints(float_folder, endpoint):
    from corpusbeam.inference.errors import PayloadTooLargeError
    from corpusbeam.retrieval.embedder import EmbedderPool
    from corpusbeam.retrieval.local_embedder import LocalQueryEmbedder

    with Searcher(float_folder) as here, Searcher(float_folder, endpoint=endpoint.url) as there:
        assert isinstance(here.embedder(), LocalQueryEmbedder)
        texts = [QUERY, "owls", "café über naïve"]
        for encoding in ("float", "int8", "ubinary", "binary"):
            a = here.embedder().embed_texts(texts, dimensions=64, encoding=encoding)
            b = there.embedder().embed_texts(texts, dimensions=64, encoding=encoding)
            assert a.dtype == b.dtype and np.array_equal(a, b), encoding
        with pytest.raises(PayloadTooLargeError, match="tokens"):
            here.embed_texts(["word " * 5000])
    with EmbedderPool(local_in_process=False) as pool, Searcher(float_folder, embedders=pool) as s:
        assert s.embedder().url.startswith("http://127.0.0.1")


def test_dense_pages_of_a_rescored_folder_are_cut_from_one_ranking(binary_folder):
    with Searcher(binary_folder) as s:
        pages, cursor = [], None
        while True:
            options = PageOptions(k=6, cursor=cursor)
            page = search_page([s], QUERY, mode="dense", options=options)
            pages.append([h.id for h in page.hits])
            cursor = page.next_cursor
            if cursor is None:
                break
        one = [h.id for h in s.search_vectors(s.embed_texts([QUERY]), 100)[0]]
    assert [i for p in pages for i in p] == one  # 64 chunks: every one once, in order
