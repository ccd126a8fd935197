"""The ``corpusbeam`` command line: one module a command, each importing its library only
when that command runs."""
