"""How each tool function becomes the tool a client lists and calls.

The SDK derives a tool from the function; here its description is cleaned, its schemas are
made compact (``schemas``) and its argument errors are put in one line (``errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp.types import ToolAnnotations
from pydantic import ValidationError

from layerpeek.server import schemas
from layerpeek.server.errors import argument_message

READ_ONLY = ToolAnnotations(read_only_hint=True)
"""Read-only, the one hint set: the spec reads destructive and idempotent only for tools that
write, and open-world (each tool reaches out to registries) is its default."""


class LayerpeekTool(Tool):
    """A tool whose refused arguments come back as one line naming each argument and what
    it takes, instead of pydantic's report with its URL."""

    async def run(
        self, arguments: dict[str, Any], context: Any, convert_result: bool = False
    ) -> Any:
        try:
            return await super().run(arguments, context, convert_result)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(exc, UnexpectedToolError) or not isinstance(cause, ValidationError):
                raise
            raise ToolError(argument_message(cause, self.parameters)) from cause


def tool(fn: Callable[..., Any]) -> Tool:
    """The registered form of a tool function: compact schemas, a one-paragraph description."""
    made = LayerpeekTool.from_function(
        fn, description=schemas.description(fn.__doc__ or ""), annotations=READ_ONLY
    )
    made.parameters = schemas.input_schema(made.parameters)
    output = made.fn_metadata.output_schema
    if output is not None:
        made.fn_metadata.output_schema = schemas.output_schema(output)
    return made
