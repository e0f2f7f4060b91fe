"""``layerpeek-bot``'s entry point: the bot's packages are the [bot] extra, so an install
without it gets one line naming what to install instead of a traceback."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from layerpeek.core.extras import launch


def main(argv: Sequence[str] | None = None) -> int:
    return launch("layerpeek-bot", "bot", "layerpeek.bot.cli", argv)


if __name__ == "__main__":
    sys.exit(main())
