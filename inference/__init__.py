"""The embeddings wire protocol, both sides: codecs, errors, client, local reference endpoint.

Imports no Beam: the pipeline, the query side and users' own scripts all share it.
"""

from inference.codec import ENCODINGS, decode, encode, quantize
from inference.errors import CorpusbeamError, EmbeddingError

__all__ = ["ENCODINGS", "CorpusbeamError", "EmbeddingError", "decode", "encode", "quantize"]
