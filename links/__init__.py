"""Signed download links over HTTP, shared by the front ends that hand them out.

The bot and the MCP server both sign links (core/links.py) and both may serve them, so the
settings and the endpoint live here, where either can import them without importing the other.
"""
