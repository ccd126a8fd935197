"""The local reference embeddings endpoint: the Azure AI Model Inference embeddings API,
served from a local model.

    from inference.server import EndpointConfig, running_endpoint
    with running_endpoint(EndpointConfig()) as ep:
        httpx.post(f"{ep.url}/embeddings?api-version=2024-05-01-preview", json={"input": ["hi"]})

Modules: ``config`` (settings), ``app`` (routes), ``validation`` (request checks), ``models``
with ``hashmodel`` and ``minilm`` (backends), ``tokens``, ``images``, ``shaping`` (latency,
concurrency, rate budgets, faults), ``middleware`` (request ids, log, metrics, faults as raw
ASGI), ``metrics``, ``errors`` (error answers), ``run`` (starting it), ``cli`` (flags).
Imports no Beam and nothing from ``pipeline`` or ``transforms``.
"""

from inference.server.app import create_app
from inference.server.config import EndpointConfig, FaultRates
from inference.server.run import API_VERSION, RunningEndpoint, running_endpoint

__all__ = [
    "API_VERSION",
    "EndpointConfig",
    "FaultRates",
    "RunningEndpoint",
    "create_app",
    "running_endpoint",
]
