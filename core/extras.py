"""The optional dependency groups (pyproject.toml's extras) and the one line that names the
group to install when a front end or a setting needs one that is missing.

The base install is the core and the CLI; the MCP server, the Discord bot and the Redis cache
each bring their own packages, imported only once the part that needs them starts.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Sequence

EXTRAS: dict[str, frozenset[str]] = {
    "mcp": frozenset({"mcp", "starlette", "uvicorn"}),
    "bot": frozenset({"discord", "PIL", "starlette", "uvicorn"}),
    "redis": frozenset({"redis"}),
}
"""Each extra's top-level import names, as its code imports them."""


def install_hint(error: ModuleNotFoundError, extra: str) -> str | None:
    """``install layerpeek[extra]`` if ``error`` is the import of a package ``extra`` brings;
    None for any other missing module (a broken install, shown as it is)."""
    top = (error.name or "").partition(".")[0]
    if top not in EXTRAS[extra]:
        return None
    return f"install layerpeek[{extra}] ({top} is not installed)"


def launch(command: str, extra: str, module: str, argv: Sequence[str] | None = None) -> int:
    """Run ``module``'s ``main(argv)``, the entry point of a front end that ``extra`` brings:
    without that extra installed, one line naming what to install instead of a traceback."""
    try:
        run: Callable[[Sequence[str] | None], int] = importlib.import_module(module).main
    except ModuleNotFoundError as error:
        hint = install_hint(error, extra)
        if hint is None:
            raise
        sys.stderr.write(f"{command}: {hint}\n")
        return 1
    return run(argv)
