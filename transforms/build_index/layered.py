"""A layered part (``indexes.storage.layers``): what the part writer keeps of the previous
version's base part, which base ids it removes, and the part's reference.

A layer's facts are ``{"base": the base part's info or None, "kept": rows kept from it,
"removed": the removed ids' file entry or None}``. The file reads are
``transforms.part_layers``'; these functions decide.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from corpusbeam.errors import ConfigError
from transforms.build_index.runs import run_metadata
from transforms.part_layers import (
    base_of,
    base_rows,
    kept_in_base,
    read_base_metadata,
    removed_entry,
)
from transforms.previous import PreviousVersion

__all__ = ["kept_only", "layer_ref", "split_layer"]


def _base_rows(previous: PreviousVersion, base: dict, part: int, unread_rows) -> tuple:
    """(base part ``part``'s ids, the live ones from documents this run did not read:
    unchanged files, which stay as they are); counts the latter in ``unread_rows``."""
    ids, unread = base_rows(previous, base, part)
    unread_rows.inc(int(unread.size))
    return ids, unread


def split_layer(
    previous: PreviousVersion,
    folder: str,
    part: int,
    table: pa.Table,
    pre_kept: np.ndarray,
    unread_rows,
) -> tuple[pa.Table, dict, list[dict]]:
    """Drop the rows the previous version's base part holds as they are (``pre_kept``:
    found so by ``ReuseVectors``; reused run rows equal to the base's). Returns (the rest:
    the delta's rows; the layer's facts; the rows whose id is kept from elsewhere, as
    ``{"document_id", "chunk", "uri"}``: the same id twice, which must be unique)."""
    base = base_of(previous, part)
    layer = {"base": base, "kept": 0, "removed": None}
    if base is None:
        return table, layer, []
    ids = table.column("id").to_numpy()
    base_ids, unread = _base_rows(previous, base, part, unread_rows)
    pre_kept = np.union1d(pre_kept, unread)
    reused = table.column("reused").to_numpy(zero_copy_only=False)
    kept = np.zeros(ids.size, dtype=bool)
    if (reused & np.isin(ids, base_ids)).any():  # compare them with the base's rows
        old = read_base_metadata(previous, base)
        kept = kept_in_base(run_metadata(table), reused, old)
        del old
    # A run row with an id kept from elsewhere: the same id twice (ids must be unique).
    twice = np.isin(ids, pre_kept) & ~kept
    duplicates = table.filter(pa.array(twice)).select(["document_id", "chunk", "uri"])
    kept |= twice
    everything = np.union1d(pre_kept, ids[kept])
    gone = np.setdiff1d(base_ids, everything, assume_unique=True)
    layer["kept"] = int(everything.size)
    layer["removed"] = removed_entry(folder, part, gone)
    return table.filter(pa.array(~kept)), layer, duplicates.to_pylist()


def kept_only(
    previous: PreviousVersion, folder: str, part: int, pre_kept: np.ndarray, unread_rows
) -> dict:
    """A layered part none of whose rows this run wrote: the base part's ids minus
    ``pre_kept`` are removed. Without a base part (the live version had a delta part
    alone there), a layer with no base."""
    base = base_of(previous, part)
    if base is None and pre_kept.size:
        raise ConfigError("kept", part, "rows were kept from a base part that is not there")
    if base is None:
        return {"base": None, "kept": 0, "removed": None}
    base_ids, unread = _base_rows(previous, base, part, unread_rows)
    pre_kept = np.union1d(pre_kept, unread)
    gone = np.setdiff1d(base_ids, pre_kept, assume_unique=True)
    return {
        "base": base,
        "kept": int(pre_kept.size),
        "removed": removed_entry(folder, part, gone),
    }


def layer_ref(
    previous: PreviousVersion,
    part: int,
    layer: dict,
    info: dict | None,
    files: dict,
    width: int | None,
    rdtype: str | None,
) -> dict:
    """A layered part's reference: its delta part (or None), base part, removed ids."""
    base = layer["base"]
    mins = [i["id_min"] for i in (base, info) if i is not None]
    if layer["removed"]:  # the removed ids' file is one of this version's own files
        files = {**files, layer["removed"]["file"]: layer["removed"]["entry"]}
    return {
        "part": part,
        "layered": True,
        "info": info,
        "base": base,
        "base_folder": previous.folder,
        "removed": layer["removed"],
        "rows": layer["kept"] + (info["rows"] if info else 0),
        "id_min": min(mins),
        "files": files,
        "width": width or previous.width,
        "rescore_dtype": rdtype if info else previous.rescore_dtype,
    }
