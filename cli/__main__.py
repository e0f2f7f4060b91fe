"""``python -m layerpeek.cli``: the same as the ``layerpeek`` command."""

import sys

from layerpeek.cli.main import main

sys.exit(main())
