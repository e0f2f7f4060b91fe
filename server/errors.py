"""The one place core errors become tool errors a model can act on.

Core messages already say what was wrong (the platforms an index has, where credentials were
looked up). Here they gain what only an MCP caller needs: what to try in a tool's own arguments
(``layer=0``, ``platform=linux/arm64``), the reference form a model should send, and that the
network guard's allow-list is the operator's to change.
Nothing but the one-line message crosses: no traceback, no header, no token.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mcp.server.mcpserver.exceptions import ToolError

from layerpeek.core.errors import InvalidReference, LayerpeekError, NetworkRefused
from layerpeek.core.hints import with_hint
from layerpeek.core.text import printable

REFERENCE_FORM = (
    "expected [REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST], "
    "e.g. alpine:3.20, ghcr.io/org/app:1.2 or localhost:5000/app@sha256:..."
)
OPERATOR_NOTE = (
    " (an operator setting in the MCP server's environment: ask the user to add it to the "
    "server's env and restart the server)"
)


def tool_message(error: LayerpeekError) -> str:
    """The one line a model reads for ``error``."""
    message = printable(with_hint(error, _argument))
    if isinstance(error, InvalidReference) and "expected" not in message:
        return f"{message} ({REFERENCE_FORM})"
    if isinstance(error, NetworkRefused):
        return message + OPERATOR_NOTE
    return message


def _argument(name: str, value: str | None = None) -> str:
    """How a hint names a tool's arguments: ``layer=0``."""
    return f"the {name} argument" if value is None else f"{name}={value}"


@contextmanager
def tool_errors() -> Iterator[None]:
    """Turn every LayerpeekError raised inside into a ToolError with its one-line message."""
    try:
        yield
    except LayerpeekError as exc:
        raise ToolError(tool_message(exc)) from None
