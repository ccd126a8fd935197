"""The assembled Beam jobs: the index job (``job``: its Beam-free entry point and result;
``index_job``: configuration, run, report) and its pipeline graph (``graph``), built from
``transforms`` over ``corpusbeam.inference`` and ``indexes``; the bundled sample corpus
(``sample_corpus``)."""

__all__: list[str] = []
