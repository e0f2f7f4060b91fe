"""What an operator sets for the MCP server itself (``LAYERPEEK_MCP_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from layerpeek.core.settings import CommaList, EnvSettings

DEFAULT_CONCURRENT_CALLS = 4
"""A model may call a few tools side by side; more at once from one caller is a flood."""


class ServerSettings(EnvSettings):
    """Mostly for the HTTP transport; stdio uses only the cursor key."""

    model_config = SettingsConfigDict(env_prefix="LAYERPEEK_MCP_")

    token: SecretStr | None = Field(
        default=None,
        description="bearer token HTTP clients must send (Authorization: Bearer ...); "
        "an environment setting so it never shows in a process list",
    )
    allowed_hosts: CommaList = Field(
        default=(),
        description="Host header values accepted over HTTP (host:port, host:* for any port); "
        "turns on DNS-rebinding protection for a server bound to a public interface",
    )
    concurrent_calls: int = Field(
        default=DEFAULT_CONCURRENT_CALLS,
        ge=1,
        description="tool calls one bearer token (or client address, without one) may have "
        "running at once; one more is refused as a tool error",
    )
    cursor_key: SecretStr | None = Field(
        default=None,
        description="key that signs paging cursors; set the same one on every replica of a "
        "shared deployment that does not share a cache directory, so a cursor from one is "
        "accepted by another (default: a random key kept in the cache directory)",
    )
