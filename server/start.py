"""``layerpeek-mcp``'s entry point: the server's packages are the [mcp] extra, so an install
without it gets one line naming what to install instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from layerpeek.core.extras import launch


def main(argv: Sequence[str] | None = None) -> int:
    return launch("layerpeek-mcp", "mcp", "layerpeek.server.main", argv)


if __name__ == "__main__":
    sys.exit(main())
