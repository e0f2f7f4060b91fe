"""The MCP server: layerpeek's core as tools an AI assistant can call (``layerpeek-mcp``).

A thin front end: each tool parses its arguments, makes one call into
:class:`layerpeek.core.service.Layerpeek` and formats the answer as structured content plus a
short text. Image references come from a model, that is from untrusted text, so the registry
client always runs with the network guard on.
"""
