"""Query-time retrieval: open index folders, embed queries, search, serve.

``corpusbeam.retrieval.searcher`` (``Searcher``), ``corpusbeam.retrieval.hits`` (``Hit``),
``corpusbeam.retrieval.multi`` (``search_all`` over several folders),
``corpusbeam.retrieval.hybrid`` (search modes, Reciprocal Rank Fusion),
``corpusbeam.retrieval.fusion`` (convex or RRF fusion, the stored tuned choice),
``corpusbeam.retrieval.results`` (``search_page``: a page grouped by document, diversified
(``mmr``), with snippets (``snippets``) and a cursor (``paging``)),
``corpusbeam.retrieval.query_cache`` (the query-embedding cache),
``corpusbeam.retrieval.relevance`` (nDCG, recall, MRR on labelled queries, run files),
``corpusbeam.retrieval.tuning`` (choosing the fusion on labelled queries),
``corpusbeam.retrieval.embedder`` (which endpoint embeds the queries),
``corpusbeam.retrieval.live`` (following ``CURRENT``) and ``corpusbeam.retrieval.service`` (the HTTP
service). Imports no Beam.
"""
