"""The folder's BM25 index of the chunks' text: the analyzer that turns text into terms,
the segments one part's rows become, and reading and searching them with removed ids."""
