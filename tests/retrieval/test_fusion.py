"""Fusion: the convex combination against a hand computation, its checks, the default an
untuned folder answers with, the TREC run file, and the stored choice: ``evaluate
--tune`` writes it beside CURRENT, and ``search``, ``serve`` and ``evaluate`` read it and
name it in their answers (hash model, 64-sentence folders). The choice on an object
store: ``tests/indexes/test_object_stores.py``."""

from __future__ import annotations

import json

import httpx
import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.fusion import (
    DEFAULT_FUSION,
    FUSION_FILE,
    Fusion,
    convex,
    parse_weights,
    resolve_fusion,
)
from corpusbeam.retrieval.relevance import ndcg_at_k, write_run
from corpusbeam.retrieval.searcher import Searcher
from corpusbeam.retrieval.service.run import running_service
from tests.support.folders import corpus, make_versioned


def test_convex_matches_a_hand_computation():
    dense = ([10, 20, 30, -1], [0.9, 0.5, 0.1, 0.0])  # normalised: 1, 0.5, 0
    lexical = ([30, 40], [8.0, 2.0])  # normalised: 1, 0
    fused = convex({"dense": dense, "lexical": lexical}, 10, weights={"dense": 0.4, "lexical": 0.6})
    assert [i for i, _, _ in fused] == [30, 10, 20, 40]
    want = {30: 0.6, 10: 0.4, 20: 0.2, 40: 0.0}  # a ranking a hit is missing from adds 0
    for i, score, _ in fused:
        assert score == pytest.approx(want[i])
    assert fused[0][2] == {"dense": 3, "lexical": 1} and fused[1][2] == {"dense": 1}
    # ties go to the better best rank, then the smaller id; one candidate normalises to 1
    tied = convex(
        {"dense": ([5, 7], [1.0, 0.0]), "lexical": ([7, 5], [3.0, 1.0])},
        2,
        weights={"dense": 1, "lexical": 1},
    )
    assert [(i, s) for i, s, _ in tied] == [(5, 1.0), (7, 1.0)]
    one = Fusion(weights={"dense": 1, "lexical": 0}).fuse({"dense": ([3], [0.2])}, 5)
    assert one == [(3, 1.0, {"dense": 1})]


def test_fusions_are_checked_and_resolved():
    with pytest.raises(ConfigError, match="'max'"):
        Fusion(method="max")
    with pytest.raises(ConfigError, match=r"weights\.dense"):
        Fusion(weights={"dense": -1})
    with pytest.raises(ConfigError, match="at least one weight"):
        Fusion(weights={"dense": 0, "lexical": 0})
    with pytest.raises(ConfigError, match="rrf_k"):
        Fusion(method="rrf", rrf_k=0)
    assert parse_weights("dense=0.3, lexical=0.7") == {"dense": 0.3, "lexical": 0.7}
    with pytest.raises(ConfigError, match="--weights"):
        parse_weights("dense")
    tuned = Fusion(weights={"dense": 0.3, "lexical": 0.7}, tuned=True)
    assert resolve_fusion(tuned) is tuned
    assert resolve_fusion(tuned, "convex", weights={"dense": 0.3, "lexical": 0.7}).tuned
    changed = resolve_fusion(tuned, weights={"dense": 1, "lexical": 0})
    assert not changed.tuned and changed.weights == {"dense": 1.0, "lexical": 0.0}
    rrf = resolve_fusion(tuned, "rrf", rrf_k=20)
    assert rrf.describe() == {
        "method": "rrf",
        "weights": {"dense": 1.0, "lexical": 1.0},
        "tuned": False,
        "rrf_k": 20,
    }
    assert DEFAULT_FUSION.describe() == {
        "method": "convex",
        "weights": DEFAULT_FUSION.weights,
        "tuned": False,
    }


def test_an_untuned_folder_fuses_by_the_default_convex_combination(float_folder):
    query = "the owl eats mice"
    with Searcher(float_folder) as s:
        assert s.fusion == DEFAULT_FUSION and not s.fusion.tuned
        dense = s.search(query, k=100, mode="dense")
        lexical = s.search(query, k=100, mode="lexical")
        hybrid = s.search(query, k=8)
        rrf = s.search(query, k=8, fusion="rrf")
    w = DEFAULT_FUSION.weights
    norm = {}
    for name, hits in (("dense", dense), ("lexical", lexical)):
        lo, hi = hits[-1].score, hits[0].score
        norm[name] = {h.id: (h.score - lo) / (hi - lo) for h in hits}
    for h in hybrid:
        assert h.score == pytest.approx(sum(w[n] * norm[n].get(h.id, 0.0) for n in norm))
    assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)
    assert hybrid[0].text.startswith("the owl eats mice")
    assert rrf[0].score == pytest.approx(2 / 61)  # first in both rankings


def test_the_run_file_is_trec_format_and_keeps_the_order(tmp_path):
    rankings = {"q2": [("d1", 0.5), ("d9", 0.5), ("d3", 0.25)], "q1": [("d2", 3.0)]}
    path = tmp_path / "run.txt"
    assert write_run(path, rankings, tag="corpusbeam-hybrid") == 4
    lines = [line.split() for line in path.read_text().splitlines()]
    assert [ln[:4] for ln in lines] == [
        ["q1", "Q0", "d2", "1"],
        ["q2", "Q0", "d1", "1"],
        ["q2", "Q0", "d9", "2"],
        ["q2", "Q0", "d3", "3"],
    ]
    assert all(ln[5] == "corpusbeam-hybrid" for ln in lines)
    q2 = [float(ln[4]) for ln in lines[1:]]
    assert q2[0] > q2[1] > q2[2] and q2[0] - q2[1] < 1e-5  # the tie written just below
    with pytest.raises(ConfigError, match="tag"):
        write_run(path, rankings, tag="two words")
    with pytest.raises(ConfigError, match=r"'my doc'.*cannot hold spaces"):
        write_run(path, {"q1": [("my doc", 1.0)]}, tag="t")
    write_run(path, rankings, tag="corpusbeam-hybrid")
    pytrec_eval = pytest.importorskip("pytrec_eval")  # not a dependency: checked when present
    qrels = {"q2": {"d9": 1, "d3": 2}, "q1": {"d2": 1}}
    run = {q: {ln[2]: float(ln[4]) for ln in lines if ln[0] == q} for q in qrels}
    got = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut_10"}).evaluate(run)
    for q, ranked in rankings.items():
        want = ndcg_at_k([d for d, _ in ranked], qrels[q], 10)
        assert got[q]["ndcg_cut_10"] == pytest.approx(want, abs=1e-9)


@pytest.fixture
def labelled(tmp_path):
    """Queries made of a sentence's first words: found by both modes, in other orders."""
    texts = corpus()
    picks = list(range(0, 64, 5))
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(
            json.dumps({"_id": f"q{i}", "text": " ".join(texts[i].split()[1:4])}) + "\n"
            for i in picks
        )
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("".join(f"q{i}\tdoc-{i // 2}\t1\n" for i in picks))
    return queries, qrels


def test_tune_stores_the_choice_that_search_serve_and_evaluate_answer_with(
    tmp_path, build_text, labelled, capsys
):
    queries, qrels = labelled
    root = make_versioned(tmp_path / "out", build_text, "v1")
    run = tmp_path / "run.txt"
    argv = ["evaluate", str(root), "--queries", str(queries), "--qrels", str(qrels), "--json"]
    assert main([*argv, "--tune", "--run", str(run)]) == 0
    result = json.loads(capsys.readouterr().out)
    tuning = result["tuning"]
    stored = json.loads((root / FUSION_FILE).read_text())  # at the root, beside CURRENT
    assert not (root / "versions" / "v1" / FUSION_FILE).exists()
    assert tuning["written"] == str(root / FUSION_FILE) and stored["version"] == "v1"
    best = tuning["fusion"]
    assert best["tuned"] and stored["method"] == best["method"]
    assert stored["weights"] == best["weights"]
    assert result["fusion"] == best  # the hybrid figures printed are the tuned fusion's
    assert result["modes"]["hybrid"]["ndcg@10"] == tuning["ndcg@10"]
    top = max(tuning["dense"]["ndcg@10"], tuning["lexical"]["ndcg@10"])
    assert tuning["ndcg@10"] >= top and len(tuning["grid"]) == 27
    lines = run.read_text().splitlines()
    assert result["run"]["mode"] == "hybrid" and {ln.split()[0] for ln in lines} == {
        f"q{i}" for i in range(0, 64, 5)
    }
    assert all(len(ln.split()) == 6 and ln.split()[5] == "corpusbeam-hybrid" for ln in lines)

    assert main(["search", str(root), "owl mice", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["mode"] == "hybrid" and answer["fusion"] == best
    assert main(["search", str(root), "owl mice", "--json", "--fusion", "rrf"]) == 0
    assert json.loads(capsys.readouterr().out)["fusion"]["tuned"] is False
    assert main(["search", str(root), "owl mice", "--mode", "dense", "--weights", "dense=1"]) == 2
    assert "--weights" in capsys.readouterr().err
    assert main(argv) == 0  # evaluate reads it too
    assert json.loads(capsys.readouterr().out)["fusion"] == best
    assert main([*argv[:-1], "--tune", "--run", str(run)]) == 0  # the table, for people
    table = capsys.readouterr().out.splitlines()
    assert table[5].startswith("hybrid fused by convex (") and table[5].endswith(", tuned")
    assert table[6].startswith("tuned on 13 queries: ") and str(root / FUSION_FILE) in table[6]
    assert table[7] == f"run file (hybrid): {run}"

    with running_service([root]) as svc, httpx.Client(base_url=svc.url, timeout=30) as http:
        body = http.post("/search", json={"query": "owl mice", "k": 3}).json()
        assert body["mode"] == "hybrid" and body["fusion"] == best
        r = http.post(
            "/search", json={"query": "owl mice", "fusion": {"method": "rrf", "rrf_k": 5}}
        )
        assert r.json()["fusion"] == {
            "method": "rrf",
            "weights": {"dense": 1.0, "lexical": 1.0},
            "tuned": False,
            "rrf_k": 5,
        }
        r = http.post("/search", json={"query": "owl", "mode": "dense", "fusion": "convex"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_fusion"
        r = http.post("/search", json={"query": "owl", "fusion": {"weights": {"dense": 0}, "x": 1}})
        assert r.status_code == 400 and r.json()["error"]["target"] == "fusion"
        assert http.post("/search", json={"query": "owl", "mode": "dense"}).json()["fusion"] is None

    make_versioned(root, build_text, "v2", tag="v2")  # a new version keeps the tuned fusion
    with Searcher(root) as s:
        assert s.version == "v2" and s.fusion.describe() == best
