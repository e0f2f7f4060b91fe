"""``layerpeek-mcp``: the MCP server over stdio (default) or streamable HTTP (``--http``).

stdio is what desktop clients spawn. ``--http`` is for a shared deployment: stateless (any
replica answers any request), optionally behind one bearer token (LAYERPEEK_MCP_TOKEN), with
Host checking against DNS rebinding. Settings come from the environment and a ``.env`` file
in the working directory (``core.settings``). Configuration errors are one line on stderr;
stdout belongs to the protocol.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

from layerpeek.core.errors import LayerpeekError
from layerpeek.core.runtime import tuned_process
from layerpeek.core.settings import Settings
from layerpeek.core.settings import load_settings as load
from layerpeek.core.startup import check_service
from layerpeek.core.text import printable
from layerpeek.links.settings import LinkSettings
from layerpeek.server.app import create_server
from layerpeek.server.settings import ServerSettings

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="layerpeek-mcp",
        description="MCP server: look inside container images from an AI assistant.",
    )
    parser.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    parser.add_argument("--host", default="127.0.0.1", help="HTTP bind address")
    parser.add_argument("--port", type=int, default=8000, help="HTTP port")
    parser.add_argument("--path", default="/mcp", help="HTTP endpoint path")
    return parser


def transport_security(host: str, allowed_hosts: Sequence[str]) -> TransportSecuritySettings | None:
    """Host/Origin checks: the operator's list, or (None) the SDK's loopback defaults."""
    if not allowed_hosts:
        if host not in LOOPBACK:
            sys.stderr.write(
                "layerpeek-mcp: note: no LAYERPEEK_MCP_ALLOWED_HOSTS, so Host headers are not "
                "checked (fine behind a proxy that checks them)\n"
            )
        return None
    origins = [f"{scheme}://{h}" for h in allowed_hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(allowed_hosts=list(allowed_hosts), allowed_origins=origins)


def warn_if_open(host: str, server_settings: ServerSettings) -> None:
    """A server bound beyond loopback with no bearer token answers anyone who can reach the
    port, with whatever registry credentials this machine has: say so at start."""
    if host not in LOOPBACK and server_settings.token is None:
        sys.stderr.write(
            f"layerpeek-mcp: warning: serving {printable(host)} without LAYERPEEK_MCP_TOKEN: "
            "anyone who can reach this port may use the server and the registry credentials "
            "it holds; set LAYERPEEK_MCP_TOKEN\n"
        )


def http_options(args: argparse.Namespace, server_settings: ServerSettings) -> dict[str, Any]:
    """Keyword arguments for MCPServer's streamable-HTTP app (what ``--http`` runs)."""
    warn_if_open(args.host, server_settings)
    return {
        "streamable_http_path": args.path,
        "stateless_http": True,
        "transport_security": transport_security(args.host, server_settings.allowed_hosts),
    }


def read_settings() -> tuple[Settings, ServerSettings, LinkSettings]:
    """The core's, the server's and the link settings."""
    return load(Settings), load(ServerSettings), load(LinkSettings)


def build(args: argparse.Namespace) -> tuple[MCPServer[Any], ServerSettings]:
    """The server for ``args``, with settings read from the environment."""
    settings, server_settings, links = read_settings()
    key, token = server_settings.cursor_key, server_settings.token
    server = create_server(
        settings,
        cursor_key=key.get_secret_value().encode() if key else None,
        token=token.get_secret_value() if token and args.http else None,
        url=f"http://{args.host}:{args.port}",
        links=links,
        concurrent_calls=server_settings.concurrent_calls,
    )
    return server, server_settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``layerpeek-mcp``; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        check_service(read_settings()[0], guarded=True)
        server, server_settings = build(args)
        # The SDK logs at INFO to stderr; httpx would add a line per registry request.
        logging.getLogger("httpx").setLevel(logging.WARNING)
        options = http_options(args, server_settings) if args.http else {}
        with tuned_process():
            if args.http:
                server.run("streamable-http", host=args.host, port=args.port, **options)
            else:
                server.run()
    except LayerpeekError as exc:
        sys.stderr.write(f"layerpeek-mcp: error: {printable(str(exc))}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
