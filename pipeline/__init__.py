"""The assembled Beam jobs: the index job (``index_job``: configuration, run, report) and
its pipeline graph (``graph``), built from ``transforms`` over ``inference`` and
``indexes``; the bundled sample corpus (``sample_corpus``)."""

__all__: list[str] = []
