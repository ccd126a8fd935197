"""A small ASGI toolkit shared by the local reference endpoint
(``corpusbeam.inference.server``) and the search service (``corpusbeam.retrieval.service``), so
the two apps answer alike.

Modules (import the one you need; this package imports none of them):

- ``errors``: the error envelope ``{"error": {"code", "message", "target"?}}``, ``reject``
  to raise one, one response helper, and the exception handlers (a JSON catch-all for 500s);
- ``auth``: the API key, offered as ``api-key: KEY`` or ``Authorization: Bearer KEY``;
- ``body``: reading a request body under a byte limit (413 ``request_too_large``);
- ``prometheus``: the Prometheus text format (counters, gauges, histograms) and
  ``parse_metrics`` to read it back;
- ``serving``: a listening socket, uvicorn on it, in a thread, and a readiness poll.

Part of the base layer: imports no Beam and nothing of ours but ``corpusbeam.errors`` and
the protocol's error tree (``corpusbeam.inference.errors``, whose ``StatusError`` the envelope
carries); the apps import this, never the other way.
"""

__all__: list[str] = []
