"""The assembled jobs and the ``corpusbeam`` command line."""

__all__: list[str] = []
