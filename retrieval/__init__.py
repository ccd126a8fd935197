"""Query-time retrieval: open index folders, embed queries, search, serve.

``retrieval.searcher`` (``Searcher``, ``search_all``), ``retrieval.hybrid`` (search
modes, Reciprocal Rank Fusion), ``retrieval.relevance`` (nDCG, recall, MRR on labelled
queries), ``retrieval.embedder`` (which endpoint embeds the queries), ``retrieval.live``
(following ``CURRENT``) and ``retrieval.service`` (the HTTP service). Imports no Beam.
"""
