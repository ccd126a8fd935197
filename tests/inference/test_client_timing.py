"""The timed transport: one latency a request the endpoint answered, the whole exchange."""

from __future__ import annotations

from corpusbeam.inference.client import ClientSettings, EmbeddingsClient
from corpusbeam.inference.client.timing import timed_transport
from corpusbeam.inference.server import EndpointConfig, running_endpoint


def test_each_answered_request_is_timed_whole():
    with running_endpoint(EndpointConfig(latency_ms=(30.0, 30.0))) as ep:
        settings = ClientSettings(endpoint=ep.url, max_inputs=2, max_concurrency=2)
        seen: list[float] = []
        with EmbeddingsClient(settings, transport=timed_transport(settings, seen.append)) as c:
            result = c.embed_texts([f"text number {i}" for i in range(10)])
            assert result.vectors.shape[0] == 10
            assert c.stats.requests == 5
    assert len(seen) == 5
    assert all(30.0 <= ms < 5000 for ms in seen), seen
