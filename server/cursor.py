"""Opaque paging cursors: where the next page starts, signed so a model cannot forge one.

A cursor is ``base64url(json) "." base64url(hmac)``. The JSON names the listing it belongs to
(a kind and a hash of the query) and the position; the signature makes an edited or invented
cursor an error instead of a silently different page. The key is per process unless the
operator sets one, so a restarted server refuses old cursors: the model starts the listing
again, which is always possible.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError

_SIGNATURE_BYTES = 16
RESTART = "call again without a cursor to start from the first page"


def query_hash(*parts: object) -> str:
    """A short fingerprint of the arguments that define a listing (not the page position)."""
    text = json.dumps(parts, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class CursorCodec:
    """Signs and checks cursors with one key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._key, payload, hashlib.sha256).digest()[:_SIGNATURE_BYTES]

    def encode(self, kind: str, query: str, **position: Any) -> str:
        payload = json.dumps({"k": kind, "q": query, **position}, separators=(",", ":")).encode()
        return f"{_b64(payload)}.{_b64(self._sign(payload))}"

    def decode(self, cursor: str, kind: str, query: str) -> dict[str, Any]:
        """The position in ``cursor``, or a ToolError saying why it cannot be used here."""
        payload = self._verified(cursor)
        data = json.loads(payload)
        if data.get("k") != kind:
            raise ToolError(f"this cursor was returned by another tool, not this one; {RESTART}")
        if data.get("q") != query:
            raise ToolError(
                "this cursor belongs to a listing with other arguments; repeat the arguments "
                f"of the call that returned it, or {RESTART}"
            )
        return data

    def _verified(self, cursor: str) -> bytes:
        try:
            body, signature = cursor.strip().split(".")
            payload, mac = _unb64(body), _unb64(signature)
        except (ValueError, binascii.Error):
            raise ToolError(
                f"malformed cursor: pass next_cursor exactly as returned; {RESTART}"
            ) from None
        if not hmac.compare_digest(mac, self._sign(payload)):
            raise ToolError(
                "invalid cursor: it was altered, or issued before this server restarted; " + RESTART
            )
        return payload
