"""Beam PTransforms: read, chunk, batch, embed and write."""

__all__: list[str] = []
