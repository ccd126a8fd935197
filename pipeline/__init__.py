"""The assembled jobs, query-time search and the ``corpusbeam`` command line.

Search: ``pipeline.searcher`` (``Searcher``, ``search_all``), ``pipeline.embedder``
(query embedding), ``pipeline.live`` (following ``CURRENT``), ``pipeline.service`` and
``pipeline.service_run`` (the HTTP service).
"""

__all__: list[str] = []
