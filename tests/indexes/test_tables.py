"""The folder's tables: the metadata schema and the vectors parts' fixed-size lists."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from corpusbeam.errors import ConfigError
from indexes.storage.tables import metadata_table


def test_vectors_parquet_has_fixed_size_lists(float_folder, xb):
    schema = pq.read_schema(float_folder / "parts" / "part-00000.vectors.parquet")
    assert schema.field("id").type == pa.int64()
    assert schema.field("vector").type == pa.list_(pa.float32(), xb.shape[1])


def test_metadata_table_standard_columns_and_errors(metadata):
    t = metadata_table({"document_id": ["a", "b"], "chunk": [0, 0], "tag": ["x", "y"]})
    assert t.column_names[:9] == [
        "id",
        "document_id",
        "chunk",
        "uri",
        "modality",
        "text",
        "char_start",
        "char_end",
        "content_hash",
    ]
    assert t.column("uri").null_count == 2 and t.column("tag").to_pylist() == ["x", "y"]
    with pytest.raises(ConfigError, match="document_id"):
        metadata_table({"chunk": [0]})
    with pytest.raises(ConfigError, match=r"metadata\.id"):
        metadata_table({"document_id": ["a"], "chunk": [0], "id": [5]})
