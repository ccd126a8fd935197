"""The search service: an ASGI app over live indexes (``app``), its metrics, its OpenAPI
document, and running it (``run``)."""
