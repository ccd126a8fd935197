"""corpusbeam: turn a corpus of documents and images into a searchable vector index.

This package is the base every other layer may import: ``corpusbeam.errors`` (the root of
the exception tree), ``corpusbeam._lazy`` (names that load their module on first use) and
``corpusbeam.asgi`` (the HTTP toolkit both apps share). Importing it loads nothing but the
standard library.
"""

__all__: list[str] = []
