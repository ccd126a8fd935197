"""FAISS indexes: choose, train, add, merge, store (index + Parquet + manifest), search.

Plain numpy, FAISS and pyarrow; imports no Beam. The usual entry points:

- ``build_folder(path, xb, metadata, encoding=..., model=...)`` builds an index folder;
- ``open_index(path, expect_encoding=..., expect_model=..., expect_dimensions=...)``
  verifies and opens one; ``IndexFolder.search(xq, k, filter=...)`` searches it;
- ``evaluate_folder(path)`` measures recall@k and latency against exact search;
- ``choose_index``, ``train_index``, ``add_vectors``, ``merge_indexes``, ``merge_ondisk``
  and ``shard_group`` build in pieces on many workers; ``indexes.search.search`` searches
  a bare FAISS index (filters, rescoring) without a folder.
"""

from indexes.build import (
    add_vectors,
    deserialize_index,
    merge_indexes,
    merge_ondisk,
    prepare_queries,
    prepare_vectors,
    read_index,
    serialize_index,
    shard_group,
    train_index,
    training_sample,
    write_index,
)
from indexes.builder import build_folder
from indexes.choose import (
    DEFAULT_MEMORY_BUDGET,
    IndexSpec,
    choose_index,
    family_of,
    make_index,
)
from indexes.config import BuildConfig
from indexes.evaluate import evaluate_folder
from indexes.filters import filter_ids, filter_mask
from indexes.ids import check_ids, chunk_id, chunk_ids
from indexes.manifest import FORMAT_VERSION, Manifest, check_expected, sanitize_endpoint
from indexes.reader import IndexFolder, open_index
from indexes.rebuild import rebuild_folder
from indexes.search import RescoreStore, SearchResult, index_id_view, set_search_params
from indexes.tables import METADATA_COLUMNS, metadata_table
from indexes.tune import (
    TuneResult,
    drop_ids,
    exact_search,
    measure,
    recall_at_k,
    reference_neighbours,
    tune_index,
)

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "FORMAT_VERSION",
    "METADATA_COLUMNS",
    "BuildConfig",
    "IndexFolder",
    "IndexSpec",
    "Manifest",
    "RescoreStore",
    "SearchResult",
    "TuneResult",
    "add_vectors",
    "build_folder",
    "check_expected",
    "check_ids",
    "choose_index",
    "chunk_id",
    "chunk_ids",
    "deserialize_index",
    "drop_ids",
    "evaluate_folder",
    "exact_search",
    "family_of",
    "filter_ids",
    "filter_mask",
    "index_id_view",
    "make_index",
    "measure",
    "merge_indexes",
    "merge_ondisk",
    "metadata_table",
    "open_index",
    "prepare_queries",
    "prepare_vectors",
    "read_index",
    "rebuild_folder",
    "recall_at_k",
    "reference_neighbours",
    "sanitize_endpoint",
    "serialize_index",
    "set_search_params",
    "shard_group",
    "train_index",
    "training_sample",
    "tune_index",
    "write_index",
]
