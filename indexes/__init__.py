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
  and ``shard_group`` build in pieces on many workers; ``indexes.ann.search.search`` searches
  a bare FAISS index (filters, rescoring) without a folder.
"""

from corpusbeam._lazy import lazy_exports

_EXPORTS = {
    "add_vectors": "indexes.ann.train",
    "deserialize_index": "indexes.ann.serialize",
    "merge_indexes": "indexes.ann.merge",
    "merge_ondisk": "indexes.ann.merge",
    "prepare_queries": "indexes.ann.train",
    "prepare_vectors": "indexes.ann.train",
    "read_index": "indexes.ann.serialize",
    "serialize_index": "indexes.ann.serialize",
    "shard_group": "indexes.ann.merge",
    "train_index": "indexes.ann.train",
    "training_sample": "indexes.ann.train",
    "write_index": "indexes.ann.serialize",
    "build_folder": "indexes.building.folder",
    "DEFAULT_MEMORY_BUDGET": "indexes.config",
    "choose_index": "indexes.ann.choose",
    "IndexSpec": "indexes.ann.spec",
    "family_of": "indexes.ann.spec",
    "make_index": "indexes.ann.spec",
    "BuildConfig": "indexes.config",
    "evaluate_folder": "indexes.building.evaluate",
    "filter_ids": "indexes.filters",
    "filter_mask": "indexes.filters",
    "LexicalIndex": "indexes.lexical.index",
    "build_lexical": "indexes.lexical.index",
    "encode_segment": "indexes.lexical.index",
    "lexical_info": "indexes.lexical.index",
    "open_lexical": "indexes.lexical.index",
    "tokenize": "indexes.lexical.analyzer",
    "check_ids": "indexes.storage.ids",
    "chunk_id": "indexes.storage.ids",
    "chunk_ids": "indexes.storage.ids",
    "FORMAT_VERSION": "indexes.storage.manifest",
    "Manifest": "indexes.storage.manifest",
    "check_expected": "indexes.storage.manifest",
    "sanitize_endpoint": "indexes.storage.manifest",
    "IndexFolder": "indexes.reader",
    "open_index": "indexes.reader",
    "rebuild_folder": "indexes.building.rebuild",
    "RescoreStore": "indexes.ann.search",
    "SearchResult": "indexes.ann.search",
    "index_id_view": "indexes.ann.search",
    "set_search_params": "indexes.ann.search",
    "METADATA_COLUMNS": "indexes.storage.tables",
    "metadata_table": "indexes.storage.tables",
    "TuneResult": "indexes.building.tune",
    "drop_ids": "indexes.building.tune",
    "exact_search": "indexes.building.tune",
    "measure": "indexes.building.tune",
    "recall_at_k": "indexes.building.tune",
    "reference_neighbours": "indexes.building.tune",
    "tune_index": "indexes.building.tune",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
