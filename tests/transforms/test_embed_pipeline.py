"""Read -> chunk -> embed in real pipelines against the reference endpoint with faults
injected: every input ends embedded or failed, none twice, none missing."""

from __future__ import annotations

import json

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.metrics import MetricsFilter
from apache_beam.testing.util import assert_that

from corpusbeam.inference.client import ClientSettings, EmbeddingsClient, RetryPolicy, Timeouts
from corpusbeam.inference.server import EndpointConfig, FaultRates, running_endpoint
from tests.support.beam import exactly, run
from tests.support.images import solid_png
from transforms import (
    ChunkDocuments,
    EmbedImages,
    EmbedTexts,
    ReadDocuments,
    ReadImages,
)

N_DOCS = 120
BLOCKED = 37  # the document the content filter refuses


def write_corpus(root):
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "docs.jsonl", "w") as f:
        for i in range(N_DOCS):
            text = f"Document {i} talks about topic {i % 9} and nothing else."
            if i == BLOCKED:
                text = "This document says forbidden things."
            f.write(json.dumps({"id": f"d{i:03d}", "text": text}) + "\n")
    return root


def settings_for(url: str) -> ClientSettings:
    return ClientSettings(
        endpoint=url,
        max_inputs=8,
        max_concurrency=4,
        timeouts=Timeouts(read=1.0),
        retry=RetryPolicy(initial_backoff=0.02, max_backoff=0.2, max_attempts=30),
    )


@pytest.fixture(scope="module")
def faulty_endpoint():
    cfg = EndpointConfig(
        dimensions=32,
        faults=FaultRates(server_error=0.08, drop=0.05, truncate=0.03, stall=0.03),
        stall_seconds=3.0,
        rpm=6,  # a budget of 6 requests a second: 429s with Retry-After
        rate_window_seconds=1.0,
        blocked_words=("forbidden",),
        seed=11,
    )
    with running_endpoint(cfg) as ep:
        yield ep


@pytest.mark.parametrize("runner", ["direct", "portable"])
def test_every_input_ends_embedded_or_failed_exactly_once(tmp_path, faulty_endpoint, runner):
    corpus = write_corpus(tmp_path / "corpus")
    settings = settings_for(faulty_endpoint.url)
    embedded_expected = {f"d{i:03d}#0": "Document" for i in range(N_DOCS) if i != BLOCKED}
    failed_expected = {f"d{BLOCKED:03d}#0": "ContentFilterError"}

    def build(p):
        docs, read_failures = p | ReadDocuments(str(corpus / "*.jsonl"))
        chunks, chunk_failures = docs | ChunkDocuments(max_tokens=64)
        embedded, embed_failures = chunks | EmbedTexts(settings)
        assert_that(
            embedded | beam.Map(lambda e: (f"{e.document_id}#{e.chunk_index}", e.text)),
            exactly(embedded_expected),
            label="Embedded",
        )
        failures = (read_failures, chunk_failures, embed_failures) | beam.Flatten()
        assert_that(
            failures | beam.Map(lambda f: (f.source_id, f"{f.stage} {f.error}: {f.message}")),
            exactly(failed_expected),
            label="Failures",
        )
        assert_that(
            embedded | beam.Map(lambda e: (e.document_id, f"{e.vector.dtype}{e.vector.shape}")),
            exactly({k.split("#")[0]: "float32(32,)" for k in embedded_expected}),
            label="Vectors",
        )

    result = run(build, runner)
    counters = {
        m.key.metric.name: m.committed
        for m in result.metrics().query(MetricsFilter().with_namespace("corpusbeam"))["counters"]
    }
    assert counters["inputs_embedded"] == N_DOCS - 1 and counters["inputs_failed"] == 1
    assert counters["retries"] > 0 and counters["requests"] > N_DOCS // 8
    assert counters.get("throttled", 0) > 0
    assert counters["splits"] >= 1 and counters["prompt_tokens"] > 0


def test_vectors_match_the_client_and_images_embed(tmp_path):
    (tmp_path / "a.txt").write_text("Cats purr in the sun.")
    (tmp_path / "b.txt").write_text("Boats sail across the bay.")
    (tmp_path / "red.png").write_bytes(solid_png())
    (tmp_path / "red.txt").write_text("a red square")
    (tmp_path / "blue.png").write_bytes(solid_png(colour=(0, 0, 255)))
    with running_endpoint(EndpointConfig(dimensions=64)) as ep:
        settings = ClientSettings(endpoint=ep.url, encoding_format="int8")
        with EmbeddingsClient(settings) as client:
            want = client.embed_texts(
                ["Cats purr in the sun.", "Boats sail across the bay."], input_type="document"
            ).vectors
        out = tmp_path / "out"

        def build(p):
            docs, _ = p | "Docs" >> ReadDocuments(str(tmp_path / "*.txt"))
            chunks, _ = docs | ChunkDocuments()
            texts, _ = chunks | EmbedTexts(settings)
            images, _ = p | "Images" >> ReadImages(str(tmp_path / "*.png"))
            pics, _ = images | EmbedImages(settings)
            (
                (texts, pics)
                | beam.Flatten()
                | beam.Map(
                    lambda e: json.dumps([e.document_id, e.modality, e.text, e.vector.tolist()])
                )
                | beam.io.WriteToText(str(out), shard_name_template="")
            )

        run(build)
    rows = {r[0]: r for r in map(json.loads, out.read_text().splitlines())}
    assert np.array_equal(np.array(rows["a.txt"][3], dtype=np.int8), want[0])
    assert np.array_equal(np.array(rows["b.txt"][3], dtype=np.int8), want[1])
    assert rows["red.png"][1:3] == ["image", "a red square"]
    assert rows["blue.png"][2] is None and len(rows["blue.png"][3]) == 64


def test_a_literal_api_key_is_refused_when_the_pipeline_is_built():
    from corpusbeam.errors import ConfigError
    from corpusbeam.inference.client import ApiKey

    settings = ClientSettings(endpoint="http://127.0.0.1:9", credential=ApiKey("s3cret"))
    with pytest.raises(ConfigError, match="EnvApiKey") as info:
        EmbedTexts(settings)
    assert "s3cret" not in str(info.value)
