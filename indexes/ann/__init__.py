"""FAISS primitives, with no knowledge of index folders: choose an index for a corpus,
train it, add vectors, merge shards (in memory or with their lists on disk), serialize it,
and search a bare index (filters, rescoring)."""
