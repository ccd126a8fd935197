"""``python -m corpusbeam``: the ``corpusbeam`` command line."""

import sys

from corpusbeam.cli.main import main

sys.exit(main())
