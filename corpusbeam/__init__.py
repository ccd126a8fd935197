"""corpusbeam: turn a corpus of documents and images into a searchable vector index.

The public API, one import name::

    from corpusbeam import IndexJobConfig, Searcher, run_index_job

    result = run_index_job(IndexJobConfig(inputs=("docs/",), output="out"))
    with Searcher("out") as s:
        hits = s.search("how do I reset it?", k=5)

Names load their module on first use (``corpusbeam._lazy``): importing the package loads
only the standard library, and ``from corpusbeam import Searcher, run_index_job`` loads
neither Beam nor FAISS (the job imports Beam when it runs, the searcher FAISS when it opens
a folder). ``open_index`` loads FAISS.

This package is also the base every other layer may import: ``corpusbeam.errors`` (the
root of the exception tree), ``corpusbeam._lazy`` and ``corpusbeam.asgi`` (the HTTP toolkit
both apps share). Library code imports names from their modules, never from here.
"""

from corpusbeam._lazy import lazy_exports

_EXPORTS = {
    "ClientSettings": "corpusbeam.inference.client",
    "ConfigError": "corpusbeam.errors",
    "CorpusbeamError": "corpusbeam.errors",
    "EmbeddingError": "corpusbeam.inference.errors",
    "EmbeddingsClient": "corpusbeam.inference.client",
    "ExitCode": "corpusbeam.exit_codes",
    "IndexFolderError": "corpusbeam.errors",
    "IndexJobConfig": "pipeline.config",
    "IndexJobResult": "pipeline.job",
    "JobError": "corpusbeam.errors",
    "Searcher": "corpusbeam.retrieval.searcher",
    "open_index": "indexes.reader",
    "run_index_job": "pipeline.job",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
