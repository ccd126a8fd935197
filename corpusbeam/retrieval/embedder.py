"""Query embedding: the endpoint an index was built with, reached once per process.

An index folder's manifest records where its vectors came from: a real URL
(``https://...``, stored without secrets) or ``local://<model>``, meaning corpusbeam's
built-in local reference endpoint with that model at its default native dimensions.
``EmbedderPool.get(manifest)`` answers a ``QueryEmbedder`` for it:

- an endpoint given explicitly (``endpoint=`` / ``--endpoint``) wins, with the pool's
  credential;
- ``local://<model>``: text queries run the endpoint's model in this process
  (``corpusbeam.retrieval.local_embedder``, the same vectors without an HTTP round trip);
  for image queries (or with ``local_in_process=False``) the pool starts
  ``running_endpoint(EndpointConfig(model=...))`` on loopback the first time and keeps it
  until ``close()``;
- otherwise the manifest's URL and ``deployment``, with the pool's credential if it has
  one, else the key in the environment variable the manifest names (``api_key_env``,
  recorded by the index job from ``--api-key-env``): an unset variable is a ConfigError
  naming it. The manifest never holds the key itself.

One embedder is kept per (URL, api-version, key variable, deployment), so every index
folder and every version of one (``Searcher`` swaps, ``corpusbeam serve`` with several
folders) shares the same connections and the same local endpoint. Queries are always
sent with ``input_type="query"`` and the manifest's ``dimensions``; the caller picks the
encoding.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Sequence

import numpy as np

from corpusbeam.errors import ConfigError
from corpusbeam.inference.client import (
    ClientSettings,
    EmbeddingsClient,
    ImageInput,
    RetryPolicy,
    Timeouts,
)
from corpusbeam.inference.client.credentials import Credential, EnvApiKey
from corpusbeam.inference.protocol import API_VERSION, local_model
from corpusbeam.retrieval.query_cache import DEFAULT_QUERY_CACHE, QueryCache
from indexes.storage.manifest import Manifest

__all__ = ["QUERY_RETRY", "EmbedderPool", "QueryEmbedder"]

# A person or a service is waiting: a few quick retries, never minutes of backoff.
QUERY_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.05, max_backoff=1.0, deadline=30.0)
QUERY_TIMEOUTS = Timeouts(connect=5.0, read=30.0, write=30.0, pool=30.0)


class QueryEmbedder:
    """Embeds query texts and images through one endpoint (a thin, blocking wrapper).
    Text queries go through ``cache`` (``corpusbeam.retrieval.query_cache``) when given."""

    def __init__(self, settings: ClientSettings, cache: QueryCache | None = None) -> None:
        self.settings = settings
        self.cache = cache
        self._client = EmbeddingsClient(settings)

    @property
    def url(self) -> str:
        return self.settings.endpoint

    def embed_texts(self, texts: Sequence[str], *, dimensions: int, encoding: str) -> np.ndarray:
        """(n, width) vectors of ``texts`` as queries, in the encoding's natural dtype."""

        def embed(batch: list[str]) -> np.ndarray:
            return self._client.embed_texts(
                batch, input_type="query", dimensions=dimensions, encoding_format=encoding
            ).vectors

        if self.cache is None:
            return embed(list(texts))
        s = self.settings
        scope = (s.endpoint, s.api_version, s.deployment, dimensions, encoding)
        return self.cache.embed(scope, list(texts), embed)

    def embed_images(
        self,
        images: Sequence[ImageInput | bytes | str],
        *,
        dimensions: int,
        encoding: str,
    ) -> np.ndarray:
        """(n, width) vectors of images (bytes, paths or ``ImageInput``) as queries."""
        result = self._client.embed_images(
            list(images), input_type="query", dimensions=dimensions, encoding_format=encoding
        )
        return result.vectors

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"QueryEmbedder(url={self.url!r})"


class EmbedderPool:
    """Query embedders by endpoint, shared by every index folder that uses the same one.

    ``endpoint``: a URL that overrides every manifest's (with ``credential``, e.g.
    ``EnvApiKey(var="VAR")``). ``query_cache``: text query vectors kept, least recently
    used dropped (0: none), one cache for every endpoint of the pool (``cache``).
    ``local_in_process``: text queries of ``local://`` indexes run the reference model in
    this process (``corpusbeam.retrieval.local_embedder``: the same vectors, no HTTP);
    False sends them to a local endpoint on loopback like image queries.
    Thread-safe; ``close()`` closes the clients and stops any local endpoint the pool
    started.
    """

    def __init__(
        self,
        *,
        endpoint: str | None = None,
        credential: Credential | None = None,
        max_concurrency: int = 32,
        query_cache: int = DEFAULT_QUERY_CACHE,
        local_in_process: bool = True,
    ) -> None:
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError("endpoint", endpoint, "must be an http:// or https:// URL")
        self.endpoint = endpoint
        self._credential = credential
        self._max_concurrency = max_concurrency
        self.cache = QueryCache(query_cache)
        self._in_process = local_in_process
        self._lock = threading.Lock()
        self._embedders: dict[tuple[str, str, str | None, str | None], QueryEmbedder] = {}
        self._local: dict[str, str] = {}  # model -> URL of the endpoint we started
        self._stack = contextlib.ExitStack()
        self._closed = False

    def get(self, manifest: Manifest) -> QueryEmbedder:
        """The embedder for the endpoint ``manifest`` was built with (see the module)."""
        model = local_model(manifest.endpoint)
        if self.endpoint is None and model is not None and self._in_process:
            with self._lock:
                if self._closed:
                    raise ConfigError("embedders", "closed", "the embedder pool is closed")
                key = ("in-process", model, None, None)
                embedder = self._embedders.get(key)
                if embedder is None:
                    from corpusbeam.retrieval.local_embedder import LocalQueryEmbedder

                    embedder = LocalQueryEmbedder(model, self.cache, lambda: self._http(manifest))
                    self._embedders[key] = embedder  # type: ignore[assignment]
                return embedder
        return self._http(manifest)

    def _http(self, manifest: Manifest) -> QueryEmbedder:
        """The client of the endpoint ``manifest`` names (a local one started if needed)."""
        with self._lock:
            if self._closed:
                raise ConfigError("embedders", "closed", "the embedder pool is closed")
            url, credential, deployment = self._resolve(manifest)
            var = credential.var if isinstance(credential, EnvApiKey) else None
            key = (url, manifest.api_version or API_VERSION, var, deployment)
            embedder = self._embedders.get(key)
            if embedder is None:
                settings = ClientSettings(
                    endpoint=url,
                    credential=credential,
                    deployment=deployment,
                    api_version=key[1],
                    retry=QUERY_RETRY,
                    timeouts=QUERY_TIMEOUTS,
                    max_concurrency=self._max_concurrency,
                )
                embedder = self._embedders[key] = QueryEmbedder(settings, self.cache)
            return embedder

    def check(self, manifest: Manifest) -> None:
        """Raise the ConfigError ``get`` would for a missing key, without connecting or
        starting anything (``corpusbeam serve`` checks every folder before it listens)."""
        if self.endpoint is None and local_model(manifest.endpoint) is None:
            self._credential_for(manifest)

    def _credential_for(self, manifest: Manifest) -> Credential | None:
        """The pool's credential, else the key in the variable the manifest names."""
        if self._credential is not None or manifest.api_key_env is None:
            return self._credential
        var = manifest.api_key_env
        if not os.environ.get(var):
            raise ConfigError(
                "api_key_env",
                var,
                f"is not set or empty: the index was built with the endpoint's key in ${var}; "
                "set it, or name another with --api-key-env VAR",
            )
        return EnvApiKey(var=var)

    def _resolve(self, manifest: Manifest) -> tuple[str, Credential | None, str | None]:
        """(URL, credential, deployment header) for ``manifest``'s queries."""
        if self.endpoint is not None:
            return self.endpoint, self._credential, None
        model = local_model(manifest.endpoint)
        if model is not None:
            if model not in self._local:
                # Imported here: only a local:// index needs the server's dependencies.
                from corpusbeam.inference.server import EndpointConfig, running_endpoint

                ep = self._stack.enter_context(running_endpoint(EndpointConfig(model=model)))
                self._local[model] = ep.url
            return self._local[model], None, None
        if manifest.endpoint is None:
            raise ConfigError(
                "endpoint",
                None,
                "the index folder records no endpoint: pass one (--endpoint URL) to embed "
                "text or image queries, or query with vectors",
            )
        return manifest.endpoint, self._credential_for(manifest), manifest.deployment

    def close(self) -> None:
        """Close every client and stop the local endpoints; safe to call twice."""
        with self._lock:
            self._closed = True
            embedders, self._embedders = list(self._embedders.values()), {}
        for embedder in embedders:
            embedder.close()
        self._stack.close()

    def __enter__(self) -> EmbedderPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
