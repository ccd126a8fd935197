"""The elements an embedding yields: an ``Embedded`` for an input and its vector, a
``Failure`` for an input that could not be embedded.

``embedded_from`` builds the ``Embedded`` of a chunk, a whole document or an image (the
embedding DoFn, ``transforms.embed_worker``, and the reuse of unchanged rows,
``transforms.reuse``, both make them); ``embed_failure`` the ``Failure`` of the embed stage,
named by the input's source id. Neither talks to an endpoint.
"""

from __future__ import annotations

from transforms.elements import Chunk, Document, Embedded, Failure, ImageItem

__all__ = ["embed_failure", "embedded_from"]


def _source_id(item: Chunk | ImageItem | Document) -> str:
    if isinstance(item, Chunk):
        return f"{item.document_id}#{item.chunk_index}"
    return item.document_id


def embed_failure(item, error: Exception) -> Failure:
    """The embed stage's ``Failure`` for ``item`` (a chunk, document or image)."""
    return Failure.of(error, source_id=_source_id(item), uri=item.uri, stage="embed")


def embedded_from(item, vector, modality: str, *, rescore=None) -> Embedded:
    """The ``Embedded`` element for a chunk, document or image and its vector (and its
    rescoring vector, when the index has derived ones)."""
    if isinstance(item, Chunk):
        return Embedded(
            document_id=item.document_id,
            chunk_index=item.chunk_index,
            uri=item.uri,
            modality="text",
            text=item.text,
            start=item.start,
            end=item.end,
            content_hash=item.content_hash,
            vector=vector,
            metadata=item.metadata,
            rescore=rescore,
        )
    if isinstance(item, Document):
        return Embedded(
            document_id=item.document_id,
            chunk_index=0,
            uri=item.uri,
            modality="text",
            text=item.text,
            start=0,
            end=len(item.text),
            content_hash=item.content_hash,
            vector=vector,
            metadata=item.metadata,
            rescore=rescore,
        )
    return Embedded(
        document_id=item.document_id,
        chunk_index=0,
        uri=item.uri,
        modality=modality,
        text=item.text,
        start=None,
        end=None,
        content_hash=item.content_hash,
        vector=vector,
        metadata=item.metadata,
        rescore=rescore,
    )
