"""Relevance on labelled queries: the metrics by hand, the BEIR files, every mode on a
real folder, and the ``corpusbeam evaluate --qrels`` command."""

from __future__ import annotations

import json
import math

import pytest

from corpusbeam.cli.main import main
from corpusbeam.errors import ConfigError
from corpusbeam.retrieval.relevance import (
    evaluate_relevance,
    load_qrels,
    load_queries,
    mrr_at_k,
    ndcg_at_k,
    recall_at_k,
)
from corpusbeam.retrieval.searcher import Searcher
from tests.support.folders import corpus


def test_metrics_match_a_hand_computation():
    judged = {"a": 2, "b": 1, "z": 1, "n": 0}
    ranked = ["x", "a", "n", "b"]
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at_k(ranked, judged, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at_k(["a", "b", "z"], judged, 10) == pytest.approx(1.0)
    assert ndcg_at_k(ranked, judged, 1) == 0.0
    assert recall_at_k(ranked, judged, 10) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, judged, 2) == pytest.approx(1 / 3)
    assert mrr_at_k(ranked, judged, 10) == 0.5
    assert mrr_at_k(["n", "x"], judged, 10) == 0.0  # a score of 0 is not relevant


def test_beir_files_load_and_bad_lines_are_named(tmp_path):
    q = tmp_path / "queries.jsonl"
    q.write_text('{"_id": "q1", "text": "owls"}\n\n{"_id": 2, "text": "dogs", "metadata": {}}\n')
    assert load_queries(q) == {"q1": "owls", "2": "dogs"}
    r = tmp_path / "qrels.tsv"
    r.write_text("query-id\tcorpus-id\tscore\nq1\tdoc-1\t1\nq1\tdoc-2\t0\n2\tdoc-3\t2\n")
    assert load_qrels(r) == {"q1": {"doc-1": 1, "doc-2": 0}, "2": {"doc-3": 2}}
    q.write_text('{"_id": "q1", "text": "owls"}\n{"_id": "q2"}\n')
    with pytest.raises(ConfigError, match=r"queries.jsonl:2.*_id"):
        load_queries(q)
    r.write_text("q1\tdoc-1\t1\nq1\tdoc-2\thigh\n")
    with pytest.raises(ConfigError, match=r"qrels.tsv:2.*'high' is not an integer"):
        load_qrels(r)


@pytest.fixture
def labelled(tmp_path):
    """Queries whose relevant document is the sentence they paraphrase."""
    texts = corpus()
    picks = [0, 9, 18, 27, 36, 45, 54, 63]
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": texts[i]}) + "\n" for i in picks)
        + json.dumps({"_id": "unjudged", "text": "nothing"})
        + "\n"
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\tdoc-{i // 2}\t1\n" for i in picks)
    )
    return queries, qrels


def test_every_mode_is_measured(float_folder, labelled):
    queries, qrels = labelled
    with Searcher(float_folder) as s:
        result = evaluate_relevance(s, load_queries(queries), load_qrels(qrels))
    assert result["queries"] == 8 and result["skipped"] == 1
    assert set(result["modes"]) == {"dense", "lexical", "hybrid"}
    for mode, values in result["modes"].items():
        # each query is its document's own sentence: found first in every mode
        assert values == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}, mode


def test_the_command_prints_a_table_or_json(float_folder, labelled, capsys):
    queries, qrels = labelled
    argv = ["evaluate", str(float_folder), "--queries", str(queries), "--qrels", str(qrels)]
    assert main([*argv, "--json", "--mode", "lexical", "--mode", "dense"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result["modes"]) == ["lexical", "dense"]
    assert main(argv) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["mode", "ndcg@10", "recall@10", "recall@100", "mrr@10"]
    assert [line.split()[0] for line in table[1:4]] == ["dense", "lexical", "hybrid"]
    assert table[4] == "8 queries judged, 1 without judgements"


def test_the_command_refuses_ambiguous_shapes(float_folder, labelled, capsys):
    queries, _ = labelled
    assert main(["evaluate", str(float_folder), "--queries", str(queries)]) == 2
    assert "needs --qrels" in capsys.readouterr().err
    assert main(["evaluate", str(float_folder), "--queries", "5", "--json"]) == 2
    assert "--json" in capsys.readouterr().err
