"""Reading an index folder: ``open_index`` verifies it and returns an ``IndexFolder``.

``open_index`` checks the manifest, the caller's expectations, every file's size and
sha256, the vectors table's schema and the index itself before handing anything out.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from corpusbeam.errors import ConfigError, IndexFolderError
from indexes.ann.merge import shard_group
from indexes.ann.search import RescoreStore, SearchResult, index_id_view, ivf_ids, search
from indexes.ann.segments import SegmentedIndex, read_tombstones
from indexes.ann.serialize import read_index
from indexes.ann.spec import IndexSpec, family_of
from indexes.filters import filter_columns, filter_ids
from indexes.storage.files import MANIFEST, sha256
from indexes.storage.layer_reader import open_parts
from indexes.storage.layers import check_overlay, overlay_files
from indexes.storage.manifest import Manifest, check_expected
from indexes.storage.part_files import METADATA_SUFFIX, RESCORE_SUFFIX, VECTORS_SUFFIX
from indexes.storage.part_ranges import PartInfo
from indexes.storage.row_files import RowFile
from indexes.storage.tables import vectors_schema

__all__ = ["IndexFolder", "open_index"]


class IndexFolder:
    """An opened, verified index folder. Use ``open_index`` to make one."""

    def __init__(self, path: Path, manifest: Manifest, index, spec: IndexSpec) -> None:
        self.path = path
        self.manifest = manifest
        self.index = index
        self.spec = spec
        self.parts = open_parts(
            path,
            [PartInfo.from_dict(p) for p in manifest.parts],
            manifest.overlay,
            encoding=manifest.encoding,
            dimensions=manifest.dimensions,
            rescore_dtype=None if manifest.rescore is None else manifest.rescore["dtype"],
        )
        self._metadata: pa.Table | None = None
        self._store: RescoreStore | None = None
        self._rows: RowFile | bool | None = False  # False: not opened yet
        self._rows_lock = threading.Lock()

    def metadata(self) -> pa.Table:
        """Every part's metadata joined (read once), sorted by id: the whole table in
        memory. Hits are looked up with ``lookup``, which reads only their row groups."""
        if self._metadata is None:
            self._metadata = self.parts.metadata()
        return self._metadata

    def allowed_ids(self, filter: dict) -> np.ndarray:
        """The ids whose metadata passes ``filter`` (``indexes.filters`` syntax), evaluated
        on the columns it names only."""
        return filter_ids(self.parts.filter_table(filter_columns(filter)), filter)

    def lookup(self, ids: np.ndarray) -> list[dict]:
        """The metadata row of each id (in the order given), from the version's
        memory-mapped rows file (``indexes.storage.row_files``); where there is none, or
        for an id not in it (an error names the reason), from its part's row group."""
        rows = self.rows_file()
        if rows is not None:
            with contextlib.suppress(IndexFolderError):
                return rows.lookup(ids)
        return self.parts.lookup(ids)

    def rows_file(self) -> RowFile | None:
        """The version's rows as one memory-mapped Arrow file, derived on first use."""
        if self._rows is False:
            with self._rows_lock:
                if self._rows is False:
                    digest = self.manifest.digest or self.manifest.compute_digest()
                    self._rows = RowFile.open(self.path, self.parts, digest=digest)
        return self._rows  # type: ignore[return-value]

    def open_all(self) -> None:
        """Open every file a query reads now, deriving the rows file if need be: an open
        file outlives its deletion, and no query pays for the derivation."""
        self.parts.open_all()
        self.rows_file()

    def vectors(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(ids, vectors in the natural dtype, rescore vectors or None) of every part joined;
        ``parts.iter_vectors()`` streams them part by part instead."""
        return self.parts.vectors()

    def rescore_store(self) -> RescoreStore | None:
        """The rescoring vectors (memory-mapped, or read by row for a compressed index's full
        vectors), or None when the folder has none."""
        if self.manifest.rescore is None:
            return None
        if self._store is None:
            # A compressed index's full vectors are read a row at a time, never mapped, so
            # resident memory stays within the budget (indexes.storage.npy_rows).
            vec = self.parts.rescore_rows(mapped=self.manifest.rescore.get("from") != "vector")
            ids = index_id_view(self.index)
            if ids is None:
                ids = ivf_ids(self.index)
            if ids is None or ids.shape[0] != vec.shape[0] or not (ids[1:] > ids[:-1]).all():
                ids = self.parts.ids()
            self._store = RescoreStore(ids, vec, dimensions=self.manifest.dimensions)
        return self._store

    def search(
        self,
        xq: np.ndarray,
        k: int = 10,
        *,
        filter: dict | None = None,
        rescore: bool | None = None,
        params: dict[str, int] | None = None,
    ) -> SearchResult:
        """k nearest of ``xq``; ``filter`` uses the ``indexes.filters`` syntax; ``rescore``
        None rescoring when the folder has rescoring vectors and the query is float."""
        store = None
        if rescore is not False and self.manifest.rescore is not None:
            if np.asarray(xq).dtype.kind == "f":
                store = self.rescore_store()
            elif rescore:
                raise ConfigError("xq", np.asarray(xq).dtype, "rescoring needs float queries")
        elif rescore:
            raise ConfigError("rescore", rescore, "this folder holds no rescoring vectors")
        allowed = None
        if filter is not None:
            allowed = self.allowed_ids(filter)
        return search(
            self.index,
            xq,
            k,
            encoding=self.manifest.encoding,
            d=self.manifest.dimensions,
            params={**self.manifest.search_params, **(params or {})},
            allowed_ids=allowed,
            rescore=store,
            rescore_factor=self.manifest.rescore["factor"] if store else 1,
        )


def open_index(
    path: str | os.PathLike,
    *,
    expect_encoding: str | None = None,
    expect_model: str | None = None,
    expect_dimensions: int | None = None,
    verify: bool = True,
    mmap: bool = False,
) -> IndexFolder:
    """Open an index folder, refusing a damaged or mismatched one with IndexFolderError.

    Checks, in order: manifest present and valid; the caller's expected encoding, model
    and dimensions; every listed file present with its size and (``verify``) sha256; the
    index's dimensions, type and vector count against the manifest.
    """
    folder = Path(path)
    mpath = folder / MANIFEST
    if not mpath.is_file():
        raise IndexFolderError(f"{folder} is not an index folder: {MANIFEST} missing")
    manifest = Manifest.from_json(mpath.read_text())
    check_expected(
        manifest, encoding=expect_encoding, model=expect_model, dimensions=expect_dimensions
    )
    if manifest.overlay is not None:
        check_overlay(manifest.overlay)
    _check_files(folder, manifest, verify=verify)
    _check_vectors_schema(folder, manifest)
    spec = IndexSpec(
        encoding=manifest.encoding,
        dimensions=manifest.dimensions,
        count=manifest.count,
        factory=manifest.index_factory,
    )
    return IndexFolder(folder, manifest, _load_index(folder, manifest, spec, mmap=mmap), spec)


def _check_files(folder: Path, manifest: Manifest, *, verify: bool) -> None:
    """Every file the manifest lists is there with its size and (``verify``) sha256."""
    suffixes = (METADATA_SUFFIX, VECTORS_SUFFIX)
    if manifest.rescore is not None:
        suffixes += (RESCORE_SUFFIX,)
    names = [p["name"] + s for p in manifest.parts for s in suffixes]
    names += overlay_files(manifest.overlay, suffixes)
    seg = manifest.segments
    if seg is not None:
        names += [seg["delta"]["file"], seg["tombstones"]["file"]]
    for name in (*names, *manifest.index_files):
        if name not in manifest.files:
            raise IndexFolderError(f"manifest lists no checksum for {name}")
    for name, info in manifest.files.items():
        p = folder / name
        if not p.is_file():
            raise IndexFolderError(f"{folder}: file {name} is missing")
        if p.stat().st_size != info.get("bytes"):
            raise IndexFolderError(f"{folder}: file {name} has the wrong size (damaged?)")
        if verify and sha256(p) != info.get("sha256"):
            raise IndexFolderError(f"{folder}: file {name} fails its sha256 check (damaged?)")


def _check_vectors_schema(folder: Path, manifest: Manifest) -> None:
    """Each part's vectors table must hold the manifest's encoding at its width (and the
    rescore column, unless the rescoring vectors are the vectors themselves)."""
    column = manifest.rescore is not None and manifest.rescore.get("from") != "vector"
    rdtype = np.dtype(manifest.rescore["dtype"]) if column else None
    want = vectors_schema(manifest.encoding, manifest.dimensions, rdtype)
    for part in [*manifest.parts, *(manifest.overlay or {}).get("parts", [])]:
        name = part["name"] + VECTORS_SUFFIX
        try:
            schema = pq.read_schema(folder / name)
        except (OSError, pa.ArrowInvalid) as exc:
            raise IndexFolderError(f"{folder}: cannot read {name} ({exc})") from None
        if not schema.remove_metadata().equals(want):
            raise IndexFolderError(
                f"{folder}: {name} holds {schema.field('vector').type}, not "
                f"{manifest.encoding} vectors of {manifest.dimensions} dimensions"
            )


def _load_index(folder: Path, manifest: Manifest, spec: IndexSpec, *, mmap: bool):
    """The index (or the shards grouped, or the segments), checked against the manifest."""
    seg = manifest.segments
    if seg is None:
        return _load_main(folder, manifest, spec, mmap=mmap, count=manifest.count)
    main = _load_main(folder, manifest, spec, mmap=mmap, count=int(seg["main"]["count"]))
    delta = read_index(folder / seg["delta"]["file"], manifest.encoding)
    tombstones = read_tombstones(folder / seg["tombstones"]["file"])
    if delta.ntotal != seg["delta"]["count"] or tombstones.size != seg["tombstones"]["count"]:
        raise IndexFolderError(
            f"{folder}: the delta segment or the tombstones disagree with the manifest's counts"
        )
    index = SegmentedIndex(main, delta, tombstones, metric=manifest.metric)
    if index.ntotal != manifest.count:
        raise IndexFolderError(
            f"{folder}: segments hold {index.ntotal} vectors; manifest says {manifest.count}"
        )
    return index


def _load_main(folder: Path, manifest: Manifest, spec: IndexSpec, *, mmap: bool, count: int):
    encoding = manifest.encoding
    if manifest.layout == "shards":
        shards = [read_index(folder / f, encoding, mmap=mmap) for f in manifest.index_files]
        index = shard_group(shards, spec) if len(shards) > 1 else shards[0]
    else:
        index = read_index(folder / manifest.index_files[0], encoding, mmap=mmap)
    is_binary = isinstance(index, faiss.IndexBinary | faiss.IndexBinaryShards)
    if is_binary != (family_of(encoding) == "binary"):
        raise IndexFolderError(f"{folder}: the index file does not hold a {encoding} index")
    if index.d != manifest.dimensions or index.ntotal != count:
        raise IndexFolderError(
            f"{folder}: index has d={index.d}, {index.ntotal} vectors; manifest says "
            f"d={manifest.dimensions}, {count}"
        )
    return index
