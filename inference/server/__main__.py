"""``python -m inference.server``: serve the local reference endpoint (see ``cli``)."""

import sys

from inference.server.cli import main

sys.exit(main())
