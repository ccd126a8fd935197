"""Query-time retrieval over one index folder: embed the query, search, rescore, look up.

    from corpusbeam import Searcher

    with Searcher("out/index") as s:                # an index folder, or an index job's DIR
        hits = s.search("how do I reset it?", k=5, filter={"lang": "en"})
        hits[0].id, hits[0].score, hits[0].document_id, hits[0].uri, hits[0].text
        s.search_texts(["a", "b"])                   # batches: one list of hits a query
        s.search_images([b"...png bytes...", "photo.jpg"])
        s.search_vectors(xq)                         # precomputed (nq, d) vectors

``path`` is an index folder (``manifest.json``) or the output directory of
``corpusbeam index`` (``CURRENT`` names the live version under ``versions/``);
``indexes.storage.versions.resolve_index_folder`` decides which. The folder is verified and
opened with ``indexes.open_index`` (memory-mapped where the index type allows it).

Queries are embedded with ``input_type="query"``, the manifest's ``dimensions`` and
``api_version``, and the manifest's ``encoding`` -- or ``float`` when the folder has
rescoring vectors (binary and int8 indexes), so the float query can rescore the
candidates. The endpoint is chosen by ``corpusbeam.retrieval.embedder.EmbedderPool``.

Scores are "higher is better" everywhere: the inner product (cosine for the unit vectors
of float indexes, the rescored dot product for binary and int8 folders), or for a binary
index searched without rescoring ``1 - 2 * hamming / d``, the cosine of the +-1 vectors.
``Hit`` is in ``corpusbeam.retrieval.hits``; searching several folders at once
(``search_all``) is ``corpusbeam.retrieval.multi``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from corpusbeam.errors import ConfigError, IndexFolderError
from corpusbeam.inference.client import ImageInput
from corpusbeam.inference.client.credentials import Credential
from corpusbeam.retrieval.embedder import EmbedderPool, QueryEmbedder
from corpusbeam.retrieval.fusion import DEFAULT_FUSION, Fusion, read_fusion, resolve_fusion
from corpusbeam.retrieval.hits import Hit, hit_scores, make_hit
from corpusbeam.retrieval.hybrid import HYBRID_DEPTH, check_mode
from corpusbeam.retrieval.query_cache import DEFAULT_QUERY_CACHE
from corpusbeam.retrieval.query_input import check_one_query, checked_texts, checked_vectors
from indexes.lexical.index import LexicalIndex, open_lexical
from indexes.storage.manifest import Manifest
from indexes.storage.versions import is_url, resolve_index_folder

if TYPE_CHECKING:
    from indexes.ann.search import SearchResult
    from indexes.reader import IndexFolder

__all__ = ["Filter", "Searcher", "check_one_query", "resolve_index_folder"]

log = logging.getLogger(__name__)

Filter = Mapping[str, Any] | None


class Searcher:
    """One opened index folder, answering text, image and vector queries.

    ``name``: how hits and errors name this index (default: the directory's name).
    ``endpoint`` / ``credential``: the embeddings endpoint to use instead of the one in
    the manifest; or pass ``embedders`` (an ``EmbedderPool``) to share endpoints with other
    searchers, in which case ``close()`` leaves the pool open. ``rescore``: None rescores
    when the folder can (float queries, rescoring vectors present), False never.
    ``verify`` checks every file's sha256 on opening (slow for large folders);
    ``mmap`` memory-maps the index file where the index type allows it. ``query_cache``:
    text query vectors kept by a pool this searcher makes (``corpusbeam.retrieval.query_cache``).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        name: str | None = None,
        endpoint: str | None = None,
        credential: Credential | None = None,
        embedders: EmbedderPool | None = None,
        rescore: bool | None = None,
        verify: bool = True,
        mmap: bool = True,
        query_cache: int = DEFAULT_QUERY_CACHE,
    ) -> None:
        if embedders is not None and endpoint is not None:
            raise ConfigError("endpoint", endpoint, "give endpoint or embedders, not both")
        # An s3:// or gs:// output stays a string (Path would fold its "//").
        self.root = path.rstrip("/") if is_url(path) else Path(path)
        self.path = resolve_index_folder(self.root)
        self.version = self.path.name if self.path != self.root else None
        self.name = name or (
            self.root.rsplit("/", 1)[-1] if is_url(self.root) else self.root.resolve().name
        )
        self.folder: IndexFolder = _open(self.path, verify=verify, mmap=mmap)
        if rescore and self.folder.manifest.rescore is None:
            raise ConfigError("rescore", rescore, f"index {self.name} holds no rescoring vectors")
        self.rescore = rescore
        # Map the rescoring vectors now, not at the first query: the index job deletes old
        # versions, and a mapping made before that keeps working.
        self.folder.rescore_store()
        self._owns_pool = embedders is None
        self._pool = embedders or EmbedderPool(
            endpoint=endpoint, credential=credential, query_cache=query_cache
        )
        # Hits are looked up by id in the version's memory-mapped rows file (derived now
        # if need be); it and the parts' files are opened now, so a version deleted later
        # keeps answering.
        self.folder.open_all()
        self.lexical: LexicalIndex | None = open_lexical(self.path, self.manifest.lexical)
        # How hybrid searches fuse: tuned for the output (its root's fusion.json) or the default
        self.fusion: Fusion = read_fusion(self.root) or DEFAULT_FUSION

    # ---- what this index is --------------------------------------------------------

    @property
    def manifest(self) -> Manifest:
        return self.folder.manifest

    @property
    def dimensions(self) -> int:
        return self.folder.manifest.dimensions

    @property
    def rescores(self) -> bool:
        """Whether float queries are rescored against stored vectors."""
        return self.rescore is not False and self.manifest.rescore is not None

    @property
    def query_encoding(self) -> str:
        """The encoding queries are embedded in (float when they will rescore)."""
        if self.rescores or _family(self.manifest.encoding) == "float":
            return "float"
        return self.manifest.encoding

    @property
    def score_kind(self) -> tuple[str, int, str]:
        """(model, dimensions, kind): hits merge by score only when these match.

        kind: ``cosine`` (a float index, or rescoring against float vectors),
        ``int8-dot`` (rescoring against int8 vectors: near the cosine, but clipped values
        make it smaller, so it is not mixed with exact cosines), ``hamming``.
        """
        m = self.manifest
        if self.rescores:
            kind = "cosine" if m.rescore["dtype"] == "float32" else "int8-dot"
        elif m.metric == "hamming":
            kind = "hamming"
        elif _family(m.encoding) == "int8":
            kind = "int8-dot"
        else:
            kind = "cosine"
        return (m.model, m.dimensions, kind)

    @property
    def default_mode(self) -> str:
        """How text queries are searched by default: ``hybrid`` with a lexical index."""
        return "hybrid" if self.lexical is not None else "dense"

    def resolve_mode(self, mode: str | None) -> str:
        """``mode`` checked (None: ``default_mode``); lexical and hybrid need the folder's
        lexical index."""
        if mode is None:
            return self.default_mode
        check_mode(mode)
        if mode != "dense" and self.lexical is None:
            raise ConfigError(
                "mode", mode, f"index {self.name} has no lexical index (built before it had one)"
            )
        return mode

    def fusion_for(self, fusion: Fusion | str | None = None, **options: Any) -> Fusion:
        """The fusion a hybrid query uses (``options``: weights, rrf_k; ``resolve_fusion``)."""
        return resolve_fusion(self.fusion, fusion, **options)

    def embedder(self) -> QueryEmbedder:
        """The query embedder for this index (started on first use for ``local://``)."""
        return self._pool.get(self.manifest)

    # ---- embedding -------------------------------------------------------------------

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Query vectors of ``texts``, as this index searches them."""
        texts = checked_texts(texts)
        return self.embedder().embed_texts(
            texts, dimensions=self.dimensions, encoding=self.query_encoding
        )

    def embed_images(self, images: Sequence[ImageInput | bytes | str | os.PathLike]) -> np.ndarray:
        """Query vectors of images (bytes, paths, or ``ImageInput`` with a text)."""
        if isinstance(images, bytes | str | os.PathLike):
            raise ConfigError("images", type(images).__name__, "pass a list of images")
        items = [im if isinstance(im, ImageInput | bytes) else os.fspath(im) for im in images]
        return self.embedder().embed_images(
            items, dimensions=self.dimensions, encoding=self.query_encoding
        )

    # ---- searching -------------------------------------------------------------------

    def search_vectors(
        self, xq: np.ndarray, k: int = 10, *, filter: Filter = None
    ) -> list[list[Hit]]:
        """Hits for each row of ``xq``: (nq, d) float queries, or queries in the index's own
        encoding (natural dtype); a single (d,) vector is one query."""
        xq = checked_vectors(xq)
        result = self.folder.search(
            xq, k, filter=None if filter is None else dict(filter), rescore=self.rescore
        )
        return self.hits(result)

    def search_texts(
        self,
        texts: Sequence[str],
        k: int = 10,
        *,
        filter: Filter = None,
        mode: str | None = None,
        weights: Mapping[str, float] | None = None,
        rrf_k: float | None = None,
        vectors: np.ndarray | None = None,
        fusion: Fusion | str | None = None,
        depth: int | None = None,
    ) -> list[list[Hit]]:
        """Hits for each text, in order. ``mode``: ``dense``, ``lexical`` or ``hybrid``
        (default: ``default_mode``); ``fusion`` (``rrf``, ``convex`` or a ``Fusion``),
        ``weights`` and ``rrf_k`` change the hybrid fusion from the folder's
        (``fusion_for``, ``corpusbeam.retrieval.fusion``); ``vectors``: the texts' query
        vectors when the caller embedded them already; ``depth``: candidates each ranking
        gives the fusion (default ``HYBRID_DEPTH``; pages of one ranking keep it,
        ``corpusbeam.retrieval.paging``)."""
        texts = checked_texts(texts)
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ConfigError("k", k, "must be an integer >= 1")
        mode = self.resolve_mode(mode)
        fuse = self.fusion_for(fusion, weights=weights, rrf_k=rrf_k)
        if mode == "dense":
            xq = self.embed_texts(texts) if vectors is None else vectors
            return self.search_vectors(xq, k, filter=filter)
        allowed = None if filter is None else self.folder.allowed_ids(dict(filter))
        depth = k if mode == "lexical" else max(k, depth or HYBRID_DEPTH)
        assert self.lexical is not None  # resolve_mode checked it
        lex = self.lexical.search(texts, depth, allowed_ids=allowed)
        if mode == "lexical":
            return [
                self._ranked(list(zip(row_i, row_d, strict=True)), "lexical")
                for row_i, row_d in zip(lex.I.tolist(), lex.D.tolist(), strict=True)
            ]
        xq = self.embed_texts(texts) if vectors is None else vectors
        # the dense ranking's ids only: hits are made for the k fused ones
        flt = None if filter is None else dict(filter)
        dense = self.folder.search(checked_vectors(xq), depth, filter=flt, rescore=self.rescore)
        dense_scores = hit_scores(dense.D, dense, self.dimensions)
        rankings = [
            {
                "dense": (dense.I[q].tolist(), dense_scores[q].tolist()),
                "lexical": (lex.I[q].tolist(), lex.D[q].tolist()),
            }
            for q in range(len(texts))
        ]
        return [self._fused(fuse.fuse(r, k)) for r in rankings]

    def _ranked(self, pairs: list[tuple[int, float]], name: str) -> list[Hit]:
        """Hits of one ranking's (id, score) pairs, padding (-1) dropped."""
        pairs = [(i, d) for i, d in pairs if i >= 0]
        rows = self._rows(np.asarray([i for i, _ in pairs], dtype=np.int64))
        return [
            make_hit(row, float(d), self.name, {name: r})
            for r, (row, (_, d)) in enumerate(zip(rows, pairs, strict=True), start=1)
        ]

    def _fused(self, fused: list[tuple[int, float, dict[str, int]]]) -> list[Hit]:
        rows = self._rows(np.asarray([i for i, _, _ in fused], dtype=np.int64))
        return [
            make_hit(row, score, self.name, ranks)
            for row, (_, score, ranks) in zip(rows, fused, strict=True)
        ]

    def search_images(
        self,
        images: Sequence[ImageInput | bytes | str | os.PathLike],
        k: int = 10,
        *,
        filter: Filter = None,
    ) -> list[list[Hit]]:
        """Hits for each image (bytes or path), in order."""
        return self.search_vectors(self.embed_images(images), k, filter=filter)

    def search(
        self,
        query: str | None = None,
        *,
        image: ImageInput | bytes | str | os.PathLike | None = None,
        vector: np.ndarray | Sequence[float] | None = None,
        k: int = 10,
        filter: Filter = None,
        mode: str | None = None,
        weights: Mapping[str, float] | None = None,
        fusion: Fusion | str | None = None,
    ) -> list[Hit]:
        """Hits for one query: a text, an image, or a vector (exactly one). ``mode``,
        ``fusion`` and ``weights`` apply to text queries (see ``search_texts``); images and
        vectors are dense."""
        check_one_query(query, image, vector)
        if query is not None:
            opts = {"mode": mode, "weights": weights, "fusion": fusion}
            return self.search_texts([query], k, filter=filter, **opts)[0]
        if mode is not None and check_mode(mode) != "dense":
            raise ConfigError("mode", mode, "image and vector queries are searched dense only")
        if image is not None:
            return self.search_images([image], k, filter=filter)[0]
        return self.search_vectors(np.asarray(vector), k, filter=filter)[0]

    def _rows(self, ids: np.ndarray) -> list[dict[str, Any]]:
        """The metadata rows of ``ids`` (int64, none negative), in that order, read by id
        from the parts."""
        return self.folder.lookup(np.asarray(ids, dtype=np.int64))

    def hits(self, result: SearchResult) -> list[list[Hit]]:
        """A ``SearchResult`` as hits with their metadata, matched by id."""
        D, I = result.D, result.I  # noqa: E741
        ok = I >= 0
        rows = self._rows(I[ok])
        scores = hit_scores(D, result, self.dimensions)
        out: list[list[Hit]] = []
        it = iter(rows)
        for q in range(I.shape[0]):
            line = []
            for j in range(I.shape[1]):
                if ok[q, j]:
                    line.append(make_hit(next(it), float(scores[q, j]), self.name))
            out.append(line)
        return out

    # ---- lifetime --------------------------------------------------------------------

    def close(self) -> None:
        """Close the embedders this searcher started (not a shared pool's)."""
        if self._owns_pool:
            self._pool.close()

    def __enter__(self) -> Searcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        m = self.manifest
        return (
            f"Searcher(name={self.name!r}, path={os.fspath(self.path)!r}, model={m.model!r}, "
            f"encoding={m.encoding!r}, dimensions={m.dimensions}, count={m.count})"
        )


def _open(path: Path, *, verify: bool, mmap: bool) -> IndexFolder:
    # FAISS loads here, when a folder is opened: `from corpusbeam import Searcher` loads none.
    from indexes import open_index

    if not mmap:
        return open_index(path, verify=verify)
    try:
        return open_index(path, verify=verify, mmap=True)
    except IndexFolderError as exc:
        # Some index types cannot be mapped; read them instead (a damaged folder fails
        # again here, with the same message).
        log.info("%s: opening without memory-mapping (%s)", path, exc)
        return open_index(path, verify=verify)


def _family(encoding: str) -> str:
    """``indexes.ann.spec.family_of``, imported when first needed (the module loads FAISS,
    which an opened folder has loaded already)."""
    from indexes.ann.spec import family_of

    return family_of(encoding)
