"""FAISS indexes: choose, train, add, merge, store (index + Parquet + manifest), search.

Plain numpy, FAISS and pyarrow; imports no Beam.
"""

__all__: list[str] = []
