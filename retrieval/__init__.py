"""Query-time retrieval: open index folders, embed queries, search, serve.

``retrieval.searcher`` (``Searcher``, ``search_all``), ``retrieval.embedder`` (which
endpoint embeds the queries), ``retrieval.live`` (following ``CURRENT``) and
``retrieval.service`` (the HTTP service). Imports no Beam.
"""
