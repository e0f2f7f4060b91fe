"""Opaque paging cursors: where the next page starts, signed so a model cannot forge one.

A cursor is a signed token (``core.tokens``) naming the listing it belongs to (a kind and a
hash of the query) and the position; the signature makes an edited or invented cursor an
error instead of a silently different page. The key is kept with the cache
(:data:`KEY_FILE`) unless the operator sets one, so a restarted server, such as the stdio
server a client starts for each call, takes the cursors its predecessor returned.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

from layerpeek.core import tokens

KEY_FILE = "mcp-cursor.key"
"""In the cache directory: the cursor key of every server that shares that directory."""
RESTART = "call again without a cursor to start from the first page"


def query_hash(*parts: object) -> str:
    """A short fingerprint of the arguments that define a listing (not the page position)."""
    text = json.dumps(parts, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CursorCodec:
    """Signs and checks cursors with one key."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def encode(self, kind: str, query: str, **position: Any) -> str:
        return tokens.sign(self._key, {"k": kind, "q": query, **position})

    def decode(self, cursor: str, kind: str, query: str) -> dict[str, Any]:
        """The position in ``cursor``, or a ToolError saying why it cannot be used here."""
        try:
            data = tokens.verify(self._key, cursor.strip())
        except tokens.TokenAltered:
            raise ToolError(
                "invalid cursor: it was altered, or issued by a server with another key; " + RESTART
            ) from None
        except tokens.TokenMalformed:
            raise ToolError(
                f"malformed cursor: pass next_cursor exactly as returned; {RESTART}"
            ) from None
        if data.get("k") != kind:
            raise ToolError(f"this cursor was returned by another tool, not this one; {RESTART}")
        if data.get("q") != query:
            raise ToolError(
                "this cursor belongs to a listing with other arguments; repeat the arguments "
                f"of the call that returned it, or {RESTART}"
            )
        return data
