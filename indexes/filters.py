"""Metadata filters: one small documented syntax, evaluated on ``metadata.parquet``.

A filter is a dict:

- ``{"field": value}``: equality (several keys in one dict are ANDed);
- ``{"field": {"$eq"|"$ne"|"$gt"|"$gte"|"$lt"|"$lte": value}}``;
- ``{"field": {"$in": [...]}}``, ``{"field": {"$nin": [...]}}``;
- ``{"$and": [f, ...]}``, ``{"$or": [f, ...]}``, ``{"$not": f}``.

``filter_ids(table, expr)`` returns the matching rows' ids (int64, sorted), which
``indexes.ann.search`` turns into an ``IDSelectorBatch`` inside the FAISS search. Nulls never
match (except through ``$ne`` / ``$nin``, which treat a null as different).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from corpusbeam.errors import ConfigError

__all__ = ["filter_columns", "filter_ids", "filter_mask"]

_COMPARE = {
    "$eq": pc.equal,
    "$ne": pc.not_equal,
    "$gt": pc.greater,
    "$gte": pc.greater_equal,
    "$lt": pc.less,
    "$lte": pc.less_equal,
}


def filter_mask(table: pa.Table, expr: dict[str, Any]) -> np.ndarray:
    """Boolean mask of the rows of ``table`` matching ``expr``."""
    if not isinstance(expr, dict) or not expr:
        raise ConfigError("filter", expr, "must be a non-empty dict")
    mask = np.ones(table.num_rows, dtype=bool)
    for key, value in expr.items():
        mask &= _term(table, key, value)
    return mask


def filter_columns(expr: Any) -> list[str]:
    """The metadata columns ``expr`` names (sorted), so a reader loads only those."""
    found: set[str] = set()

    def walk(e: Any) -> None:
        if isinstance(e, dict):
            for key, value in e.items():
                if key in ("$and", "$or"):
                    for sub in value if isinstance(value, list) else []:
                        walk(sub)
                elif key == "$not":
                    walk(value)
                elif not key.startswith("$"):
                    found.add(key)

    walk(expr)
    return sorted(found)


def filter_ids(table: pa.Table, expr: dict[str, Any]) -> np.ndarray:
    """Sorted int64 ids of the rows matching ``expr`` (the table needs an ``id`` column)."""
    if "id" not in table.column_names:
        raise ConfigError("table", table.column_names, "metadata needs an id column")
    ids = table.column("id").to_numpy()
    return np.sort(ids[filter_mask(table, expr)]).astype(np.int64)


def _term(table: pa.Table, key: str, value: Any) -> np.ndarray:
    if key in ("$and", "$or"):
        if not isinstance(value, list) or not value:
            raise ConfigError("filter", {key: value}, f"{key} takes a non-empty list")
        masks = [filter_mask(table, sub) for sub in value]
        return np.logical_and.reduce(masks) if key == "$and" else np.logical_or.reduce(masks)
    if key == "$not":
        return ~filter_mask(table, value)
    if key.startswith("$"):
        raise ConfigError("filter", key, "unknown operator at the top level")
    if key not in table.column_names:
        raise ConfigError("filter", key, f"no such metadata column; have {table.column_names}")
    column = table.column(key)
    if not isinstance(value, dict):
        return _compare(column, "$eq", value, key)
    if not value:
        raise ConfigError("filter", {key: value}, "empty condition")
    mask = np.ones(table.num_rows, dtype=bool)
    for op, operand in value.items():
        if op in _COMPARE:
            mask &= _compare(column, op, operand, key)
        elif op in ("$in", "$nin"):
            if not isinstance(operand, list | tuple):
                raise ConfigError("filter", {key: value}, f"{op} takes a list")
            if pa.types.is_null(column.type):  # an all-null column matches nothing
                mask &= op == "$nin"
                continue
            try:
                hit = pc.is_in(column, value_set=pa.array(list(operand), type=column.type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
                raise ConfigError("filter", {key: value}, str(exc)) from None
            got = hit.to_numpy(zero_copy_only=False).astype(bool)
            mask &= got if op == "$in" else ~got
        else:
            raise ConfigError("filter", op, "unknown operator")
    return mask


def _compare(column: pa.ChunkedArray, op: str, operand: Any, key: str) -> np.ndarray:
    if pa.types.is_null(column.type):  # an all-null column: only $ne matches
        return np.full(len(column), op == "$ne", dtype=bool)
    try:
        result = _COMPARE[op](column, pa.scalar(operand, type=column.type))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise ConfigError("filter", {key: {op: operand}}, str(exc)) from None
    filled = pc.fill_null(result, op == "$ne")
    return filled.to_numpy(zero_copy_only=False).astype(bool)
