"""The embeddings wire protocol, both sides: codecs, errors, client, local reference endpoint.

Imports no Beam: the pipeline, the query side and users' own scripts all share it. Names
load on first use (``corpusbeam._lazy``).
"""

from corpusbeam._lazy import lazy_exports

_EXPORTS = {
    "ENCODINGS": "corpusbeam.inference.protocol",
    "CorpusbeamError": "corpusbeam.errors",
    "EmbeddingError": "corpusbeam.inference.errors",
    "decode": "corpusbeam.inference.codec",
    "encode": "corpusbeam.inference.codec",
    "quantize": "corpusbeam.inference.codec",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
