"""The index job and the model: binary indexes rescored by default from one float
request, GET /info checked and recorded, and inputs too long for the model cut again."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow.parquet as pq
import pytest

from corpusbeam.errors import ConfigError
from corpusbeam.inference.server import EndpointConfig, running_endpoint
from corpusbeam.inference.server.hash_tokenizer import count_tokens
from indexes.reader import open_index
from indexes.storage import versions
from pipeline.index_job import run_index_job
from pipeline.sample_corpus import write_sample
from tests.support.jobs import embedding_requests, job
from transforms.recut import RECUT_STRIDE


@pytest.fixture(scope="module")
def endpoint():
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        yield ep


def test_a_ubinary_index_is_rescored_by_default_and_reused_with_its_rescoring(tmp_path, endpoint):
    corpus = write_sample(tmp_path / "corpus")
    out = tmp_path / "out"
    first = run_index_job(job(corpus, out, endpoint=endpoint.url, encoding_format="ubinary"))
    assert first.exit_code == 0
    folder = open_index(first.folder)
    m = folder.manifest
    assert m.encoding == "ubinary" and m.wire_encoding == "float"
    assert m.rescore is not None and m.rescore["dtype"] == "int8"
    assert m.recall["rescored"] and "int8" in m.recall["reference"]
    assert 0 <= m.recall["unrescored"] <= m.recall["value"] + 1e-9
    assert "derived from one float answer" in m.note
    assert m.model_info == {
        "name": "corpusbeam-hash",
        "type": "embeddings",
        "provider": "corpusbeam",
        "error": None,
    }
    assert first.report["model"]["name"] == "corpusbeam-hash"
    assert first.report["index"]["rescored"] and first.report["index"]["wire_encoding"] == "float"
    ids, bits, rescore = folder.vectors()
    # The stored bits are the signs of the stored int8 vectors' floats.
    assert rescore.dtype == np.int8 and bits.shape == (len(ids), 8)
    # Unchanged, the rerun sends nothing and keeps the rescoring vectors.
    before = embedding_requests(endpoint)
    again = run_index_job(job(corpus, out, endpoint=endpoint.url, encoding_format="ubinary"))
    assert embedding_requests(endpoint) == before and again.report["counts"]["reused"] == 32
    _, bits2, rescore2 = open_index(again.folder).vectors()
    np.testing.assert_array_equal(bits, bits2)
    np.testing.assert_array_equal(rescore, rescore2)


def test_the_wire_encoding_itself_makes_an_unrescored_index_that_says_so(tmp_path, endpoint):
    corpus = write_sample(tmp_path / "corpus")
    result = run_index_job(
        job(
            corpus,
            tmp_path / "out",
            endpoint=endpoint.url,
            encoding_format="ubinary",
            wire_encoding="ubinary",
        )
    )
    m = open_index(result.folder).manifest
    assert m.rescore is None and m.wire_encoding is None
    assert m.note.startswith("unrescored") and "Hamming" in m.note
    assert m.recall["reference"] == "exact Hamming distance" and not m.recall["rescored"]
    assert not result.report["index"]["rescored"]
    assert result.report["index"]["note"].startswith("unrescored")


def test_another_model_than_the_endpoint_serves_is_refused_before_any_request(tmp_path, endpoint):
    corpus = write_sample(tmp_path / "corpus")
    before = embedding_requests(endpoint)
    with pytest.raises(ConfigError, match=r"serves 'corpusbeam-hash'.*GET /info"):
        run_index_job(job(corpus, tmp_path / "out", endpoint=endpoint.url, model="embed-v-4-0"))
    assert embedding_requests(endpoint) == before
    assert versions.current_version(tmp_path / "out") is None


WORDS = [
    "river",
    "stone",
    "light",
    "garden",
    "window",
    "paper",
    "music",
    "north",
    "winter",
    "forest",
    "city",
    "bridge",
    "silver",
    "morning",
    "signal",
    "harbour",
    "lantern",
    "valley",
    "orchard",
    "meadow",
    "engine",
    "ladder",
]


def _document(rng: random.Random, tokens: int) -> str:
    out: list[str] = []
    while count_tokens(" ".join(out)) < tokens - 12:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 14)))
        out.append(sentence.capitalize() + rng.choice([".", "!", "?", ", and so on."]))
        if rng.random() < 0.15:
            out[-1] += "\n\n"
    return " ".join(out).strip()


def test_documents_too_long_for_the_model_are_cut_again_and_nothing_is_lost(tmp_path):
    rng = random.Random(7)
    docs = {f"d{i:03d}": _document(rng, 500) for i in range(120)}
    assert all(480 <= count_tokens(t) <= 520 for t in docs.values())
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps({"id": k, "text": v}) + "\n" for k, v in docs.items()))
    config = EndpointConfig(dimensions=64, max_input_tokens=64)
    with running_endpoint(config) as ep:
        result = run_index_job(
            job(corpus, tmp_path / "out", endpoint=ep.url, max_inputs=16, max_concurrency=2)
        )
        metrics = ep.metrics()
        requests = embedding_requests(ep)
    assert result.exit_code == 0
    assert result.report["counts"]["failed"] == 0
    live = versions.current_version(tmp_path / "out")
    assert pq.read_table(live / "failures.parquet").num_rows == 0
    rows = open_index(live).metadata().to_pylist()
    by_doc: dict[str, list] = {}
    for r in rows:
        by_doc.setdefault(r["document_id"], []).append(r)
    assert set(by_doc) == set(docs)
    for doc_id, text in docs.items():
        covered = np.zeros(len(text), dtype=bool)
        for r in by_doc[doc_id]:
            assert r["text"] == text[r["char_start"] : r["char_end"]]
            assert count_tokens(r["text"]) <= 64
            covered[r["char_start"] : r["char_end"]] = True
        missed = [i for i in np.flatnonzero(~covered) if not text[i].isspace()]
        assert not missed, f"{doc_id}: characters {missed[:5]} are in no chunk"
    # Refusals: the first batch teaches the limit; after it, at most 1% of requests.
    first_batch = 2 * 16
    refused = sum(v for k, v in metrics.items() if "requests_total" in k and '"413"' in k)
    assert refused - first_batch <= 0.01 * requests, (refused, requests)
    too_long = result.report["too_long"]
    assert too_long["length_refusals"] == refused
    assert too_long["cut_before_sending"] + too_long["cut_after_refusal"] >= len(docs)
    chunks = [r["chunk"] for r in rows]
    assert any(c >= RECUT_STRIDE for c in chunks) or len(rows) > 2 * len(docs)
