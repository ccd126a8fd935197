"""Shared fixtures: the local reference endpoint on loopback, started once a session.

``endpoint`` is the hash model with an API key, a blocked word and small limits (so each
limit is cheap to hit); tests that need other settings (rate budgets, faults) start their own
with ``running_endpoint``, which takes a fraction of a second.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from corpusbeam.inference.server import API_VERSION, EndpointConfig, running_endpoint
from corpusbeam.inference.server.run import RunningEndpoint
from tests.support.endpoints import BLOCKED, KEY, SMALL_LIMITS

# Fixtures shared by every test directory: index folders (float, binary, int8, images) for
# the retrieval and CLI tests, and the stand-in object stores (S3, GCS).
pytest_plugins = ["tests.support.folders", "tests.support.stores"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The long tests first (the pipeline's, and those marked ``slow``), in their order,
    then the rest: with ``pytest -n 3`` the many short tests fill in around the long ones
    instead of leaving a few long ones to run last."""
    items.sort(key=lambda item: not _long(item))


def _long(item: pytest.Item) -> bool:
    return item.get_closest_marker("slow") is not None or "tests/pipeline/" in item.nodeid


@pytest.fixture(scope="session")
def endpoint() -> Iterator[RunningEndpoint]:
    config = EndpointConfig(api_key=KEY, blocked_words=(BLOCKED,), **SMALL_LIMITS)
    with running_endpoint(config) as ep:
        yield ep


@pytest.fixture(scope="session")
def client(endpoint: RunningEndpoint) -> Iterator[httpx.Client]:
    """Authenticated, with api-version: the happy path."""
    with httpx.Client(
        base_url=endpoint.url,
        headers={"api-key": KEY},
        params={"api-version": API_VERSION},
        timeout=30,
    ) as c:
        yield c


@pytest.fixture(scope="session")
def bare_client(endpoint: RunningEndpoint) -> Iterator[httpx.Client]:
    """Neither a key nor api-version: each test adds what it means to."""
    with httpx.Client(base_url=endpoint.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def minilm_endpoint() -> Iterator[RunningEndpoint]:
    """all-MiniLM-L6-v2 behind the endpoint; the model loads once a session."""
    pytest.importorskip("sentence_transformers", reason="needs the minilm extra")
    with running_endpoint(EndpointConfig(model="minilm")) as ep:
        yield ep
