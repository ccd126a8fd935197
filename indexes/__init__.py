"""FAISS indexes: choose, train, add, merge, store (index + Parquet + manifest), search.

Plain numpy, FAISS and pyarrow; imports no Beam. Names load on first use (``corpusbeam._lazy``).
The usual entry points:

- ``build_folder(path, xb, metadata, encoding=..., model=...)`` builds an index folder;
- ``open_index(path, expect_encoding=..., expect_model=..., expect_dimensions=...)``
  verifies and opens one; ``IndexFolder.search(xq, k, filter=...)`` searches it;
- ``evaluate_folder(path)`` measures recall@k and latency against exact search;
- ``build_lexical`` / ``open_lexical``: the folder's BM25 index of the chunks' text, as
  segments (``encode_segment``: one part's segment as bytes; ``lexical_info``: the
  manifest's entry for segments plus removed ids);
- ``choose_index``, ``train_index``, ``add_vectors``, ``merge_indexes``, ``merge_ondisk``
  and ``shard_group`` build in pieces on many workers; ``indexes.search.search`` searches
  a bare FAISS index (filters, rescoring) without a folder.
"""

from corpusbeam._lazy import lazy_exports

_EXPORTS = {
    "add_vectors": "indexes.build",
    "deserialize_index": "indexes.build",
    "merge_indexes": "indexes.build",
    "merge_ondisk": "indexes.build",
    "prepare_queries": "indexes.build",
    "prepare_vectors": "indexes.build",
    "read_index": "indexes.build",
    "serialize_index": "indexes.build",
    "shard_group": "indexes.build",
    "train_index": "indexes.build",
    "training_sample": "indexes.build",
    "write_index": "indexes.build",
    "build_folder": "indexes.builder",
    "DEFAULT_MEMORY_BUDGET": "indexes.config",
    "IndexSpec": "indexes.choose",
    "choose_index": "indexes.choose",
    "family_of": "indexes.choose",
    "make_index": "indexes.choose",
    "BuildConfig": "indexes.config",
    "evaluate_folder": "indexes.evaluate",
    "filter_ids": "indexes.filters",
    "filter_mask": "indexes.filters",
    "LexicalIndex": "indexes.lexical",
    "build_lexical": "indexes.lexical",
    "encode_segment": "indexes.lexical",
    "lexical_info": "indexes.lexical",
    "open_lexical": "indexes.lexical",
    "tokenize": "indexes.lexical_tokens",
    "check_ids": "indexes.ids",
    "chunk_id": "indexes.ids",
    "chunk_ids": "indexes.ids",
    "FORMAT_VERSION": "indexes.manifest",
    "Manifest": "indexes.manifest",
    "check_expected": "indexes.manifest",
    "sanitize_endpoint": "indexes.manifest",
    "IndexFolder": "indexes.reader",
    "open_index": "indexes.reader",
    "rebuild_folder": "indexes.rebuild",
    "RescoreStore": "indexes.search",
    "SearchResult": "indexes.search",
    "index_id_view": "indexes.search",
    "set_search_params": "indexes.search",
    "METADATA_COLUMNS": "indexes.tables",
    "metadata_table": "indexes.tables",
    "TuneResult": "indexes.tune",
    "drop_ids": "indexes.tune",
    "exact_search": "indexes.tune",
    "measure": "indexes.tune",
    "recall_at_k": "indexes.tune",
    "reference_neighbours": "indexes.tune",
    "tune_index": "indexes.tune",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
