"""``python -m corpusbeam.inference.server``: serve the local reference endpoint (see ``cli``)."""

import sys

from corpusbeam.inference.server.flags import main

sys.exit(main())
