"""``python -m layerpeek.server``: the same as the ``layerpeek-mcp`` command."""

import sys

from layerpeek.server.main import main

sys.exit(main())
