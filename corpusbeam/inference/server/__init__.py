"""The local reference embeddings endpoint: the Azure AI Model Inference embeddings API,
served from a local model.

    from corpusbeam.inference.server import EndpointConfig, running_endpoint
    with running_endpoint(EndpointConfig()) as ep:
        httpx.post(f"{ep.url}/embeddings?api-version=2024-05-01-preview", json={"input": ["hi"]})

Modules: ``config`` (settings), ``app`` (routes), ``validation`` (request checks), ``models``
with ``hashmodel`` and ``minilm`` (backends), ``tokens``, ``images``, ``shaping`` (latency,
concurrency, rate budgets, faults), ``middleware`` (request ids, log, metrics, faults as raw
ASGI), ``metrics``, ``run`` (starting it), ``cli`` (flags),
``demo`` (a few documents embedded and searched over HTTP).
Error answers, auth, body limits, Prometheus text and serving come from ``corpusbeam.asgi``.
Imports no Beam and nothing from ``pipeline``, ``transforms``, ``retrieval`` or ``cli``.
Names load on first use (``corpusbeam._lazy``).
"""

from corpusbeam._lazy import lazy_exports

_EXPORTS = {
    "API_VERSION": "corpusbeam.inference.protocol",
    "EndpointConfig": "corpusbeam.inference.server.config",
    "FaultRates": "corpusbeam.inference.server.config",
    "RunningEndpoint": "corpusbeam.inference.server.run",
    "create_app": "corpusbeam.inference.server.app",
    "running_endpoint": "corpusbeam.inference.server.run",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
