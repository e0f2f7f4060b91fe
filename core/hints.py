"""What to try after an error, spelt in the syntax of the front end that shows it.

Core errors carry what a user could do instead as data: the lower layers that still ship a
deleted file, that a read without a layer reaches a linked file, the platforms an index has.
Each front end gives one ``Spelling`` of its options (``--layer 0``, ``layer=0``,
``layer:0``) and this module puts the same words around them, so the CLI, the MCP server and
the Discord bot offer the same way out, each in its own syntax.
"""

from __future__ import annotations

from typing import Protocol

from layerpeek.core.errors import FileNotInLayer, LayerpeekError, PlatformNotFound


class Spelling(Protocol):
    """How a front end writes its option ``name`` set to ``value``, or, without a value,
    names the option itself (as in "read it without the layer option")."""

    def __call__(self, name: str, value: str | None = None) -> str: ...


def hint(error: LayerpeekError, spell: Spelling) -> str:
    """What to try instead, in the front end's syntax; "" when the error offers nothing."""
    if isinstance(error, FileNotInLayer):
        if error.readable_layers:
            layer = str(error.readable_layers[-1])
            return f"read it with {spell('layer', layer)}"
        if error.merged:
            return f"read it without {spell('layer')}, through the merged view"
    if isinstance(error, PlatformNotFound) and error.available:
        return f"choose one with {spell('platform', error.available[0])}"
    return ""


def with_hint(error: LayerpeekError, spell: Spelling) -> str:
    """The error's one line, followed by its hint when it has one."""
    said, then = str(error), hint(error, spell)
    return f"{said}; {then}" if then else said
