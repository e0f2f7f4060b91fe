"""The MCPServer: its lifespan owns the one registry client and core of the process."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from pydantic import AnyHttpUrl

from layerpeek.core.settings import Settings, load_settings
from layerpeek.core.startup import open_service
from layerpeek.core.tokens import kept_key
from layerpeek.core.version import VERSION
from layerpeek.links.endpoint import LinkServer
from layerpeek.links.settings import ROUTE, LinkSettings
from layerpeek.server.common import AppState, CallLimit
from layerpeek.server.cursor import KEY_FILE, CursorCodec
from layerpeek.server.download import download_link
from layerpeek.server.fstools import FS_TOOLS
from layerpeek.server.packagetools import PACKAGE_TOOLS
from layerpeek.server.register import tool
from layerpeek.server.settings import DEFAULT_CONCURRENT_CALLS
from layerpeek.server.tools import TOOLS

INSTRUCTIONS = (
    "Look inside container images straight from their registry, without pulling them. "
    "inspect_image first (platforms, layers and the build step of each, config); then "
    "list_files for a layer's files and read_file for one file's contents; find_files, "
    "trace_path, removed_files, diff_images and triage_image look across layers; "
    "list_packages and diff_packages read the package databases. A reference is "
    "[REGISTRY/]REPOSITORY[:TAG][@sha256:DIGEST] (Docker Hub when no registry is named); a "
    "platform is os/arch[/variant], linux/amd64 by default. Lists are paged: pass next_cursor "
    "back as cursor, with the other arguments unchanged. A layer is read once and then "
    "cached, so the first call that reads every layer of a large image is the slow one. "
    "Registries on private networks are refused unless the server's operator allowed them."
)
LINK_NOTE = (
    " download_link makes an expiring URL for a layer blob or one file: give it to the user "
    "when they want the bytes themselves."
)


class StaticToken:
    """A TokenVerifier for one shared bearer token (LAYERPEEK_MCP_TOKEN): enough for a team
    deployment behind TLS; anything finer belongs to an OAuth provider in front."""

    def __init__(self, token: str) -> None:
        self._token = token.encode()

    async def verify_token(self, token: str) -> AccessToken | None:
        if not hmac.compare_digest(token.encode(), self._token):
            return None
        return AccessToken(token=token, client_id="layerpeek-mcp", scopes=[])


def create_server(
    settings: Settings | None = None,
    *,
    cursor_key: bytes | None = None,
    token: str | None = None,
    url: str = "http://127.0.0.1",
    links: LinkSettings | None = None,
    concurrent_calls: int = DEFAULT_CONCURRENT_CALLS,
) -> MCPServer[AppState]:
    """A server with every tool; ``settings`` default to the environment, read at startup.

    ``token`` turns on bearer auth for the HTTP transport (``url`` is where it is served,
    named as the token's issuer). The registry client is always guarded: references come from
    a model, so private addresses need LAYERPEEK_ALLOW_PRIVATE. With ``links`` enabled the
    server has download_link, and its HTTP app serves the links at /d/... (over stdio it only
    signs them, for another layerpeek endpoint with the same secret to serve).
    Over HTTP, each bearer token (or client address, without one) has at most
    ``concurrent_calls`` tool calls running at once. Cursors are signed with ``cursor_key``,
    or else with the key kept in the cache directory (``cursor.KEY_FILE``).
    """
    links = links if links and links.enabled else None
    endpoint = LinkServer(None, links) if links else None

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        config = settings or load_settings(Settings)
        cursors = CursorCodec(cursor_key or kept_key(config.cache_dir, KEY_FILE))
        async with open_service(config, guarded=True) as peek:
            if endpoint is not None:
                endpoint.peek = peek  # the link route serves through this lifespan's core
            yield AppState(peek, cursors, links)

    auth = AuthSettings(issuer_url=AnyHttpUrl(url), resource_server_url=None) if token else None
    functions = (*TOOLS, *FS_TOOLS, *PACKAGE_TOOLS, *((download_link,) if endpoint else ()))
    server = MCPServer(
        "layerpeek",
        instructions=INSTRUCTIONS + (LINK_NOTE if links else ""),
        version=VERSION,
        lifespan=lifespan,
        token_verifier=StaticToken(token) if token else None,
        auth=auth,
        middleware=[CallLimit(concurrent_calls)],
        tools=[tool(function) for function in functions],
    )
    if endpoint is not None:
        # Links are their own credential (signed, expiring): the route needs no bearer token.
        server.custom_route(ROUTE, methods=["GET"])(endpoint.download)
    return server
