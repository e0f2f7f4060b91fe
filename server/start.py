"""``layerpeek-mcp``'s entry point: the server's packages are the [mcp] extra, so an install
without it gets one line naming what to install instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from layerpeek.core.extras import install_hint


def main(argv: Sequence[str] | None = None) -> int:
    try:
        from layerpeek.server.main import main as run
    except ModuleNotFoundError as error:
        hint = install_hint(error, "mcp")
        if hint is None:
            raise
        sys.stderr.write(f"layerpeek-mcp: {hint}\n")
        return 1
    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
