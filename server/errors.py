"""The one place core errors and refused arguments become tool errors a model can act on.

Core messages already say what was wrong (the platforms an index has, where credentials were
looked up). Here they gain what only an MCP caller needs: what to try in a tool's own arguments
(``layer=0``, ``platform=linux/arm64``), the reference form a model should send, and that the
network guard's allow-list is the operator's to change.
Nothing but the one-line message crosses: no traceback, no header, no token.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from layerpeek.core.errors import InvalidReference, LayerpeekError, NetworkRefused
from layerpeek.core.hints import with_hint
from layerpeek.core.text import clip, printable

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


RANGES = frozenset({"less_than_equal", "greater_than_equal", "less_than", "greater_than"})
MAX_SHOWN = 40
"""Characters of a rejected value repeated in the message."""
MAX_ERRORS = 3
"""Rejected arguments named in the message (a list argument can fail once per item)."""


def _bounds(name: str, schema: dict[str, Any]) -> str:
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        return f"{name} takes {low} to {high}"
    return f"{name} takes at least {low}" if low is not None else f"{name} takes at most {high}"


def _argument_error(error: ErrorDetails, properties: dict[str, Any]) -> str:
    """One rejected argument in words: its name, the value given and what it takes."""
    name = str(error["loc"][0]) if error["loc"] else "arguments"
    where = ".".join(str(part) for part in error["loc"]) or name
    if error["type"] == "missing":
        return f"{name} is required"
    value = clip(printable(json.dumps(error["input"], default=str)), MAX_SHOWN)
    if error["type"] in RANGES:
        return f"{where}={value} is out of range: {_bounds(name, properties.get(name, {}))}"
    if error["type"] == "string_too_long":
        return f"{where} is too long: at most {error.get('ctx', {}).get('max_length')} characters"
    message = error["msg"]
    return f"{where}={value}: {message[:1].lower()}{message[1:]}"


def argument_message(error: ValidationError, schema: dict[str, Any]) -> str:
    """The one line a model reads for arguments its tool's schema refuses (pydantic's own
    text spans lines and ends with a documentation URL)."""
    properties = schema.get("properties", {})
    errors = error.errors()
    said = [_argument_error(e, properties) for e in errors[:MAX_ERRORS]]
    more = f"; and {len(errors) - MAX_ERRORS} more" if len(errors) > MAX_ERRORS else ""
    return printable("; ".join(said) + more)
