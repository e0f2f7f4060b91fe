"""Signed, expiring download links: a layer blob or one file of an image, named in a token.

A front end (the Discord bot, later the MCP server) hands people a URL that its own small HTTP
endpoint serves. The token says exactly what may be fetched, for whom and until when, and is
signed with HMAC-SHA256 so nobody can change the image, layer, path or expiry. Pure functions:
no clock, no I/O — the caller passes ``now``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass

from .errors import LayerpeekError

SIGNATURE_BYTES = 16  # 128 bits of HMAC-SHA256 is plenty against forgery and keeps URLs short
MIN_SECRET_BYTES = 16


class LinkError(LayerpeekError):
    """A download link that cannot be honoured: tampered, malformed or expired."""


class LinkExpired(LinkError):
    """The link was valid once; its time is up."""


@dataclass(frozen=True)
class LinkTarget:
    """What a link serves: the blob of layer ``layer`` of ``reference`` (pinned by digest), or
    the file ``path`` as that layer ships it (``layer`` None: as the image sees it); ``user``
    is who asked for the link (download rate limits count per user)."""

    reference: str
    layer: int | None
    path: str | None
    user: int
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: bytes, body: str) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise LinkError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes long")
    return hmac.new(secret, body.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES]


def sign(secret: bytes, target: LinkTarget) -> str:
    """The URL-safe token for ``target``: base64url(JSON) + "." + base64url(HMAC)."""
    fields: dict[str, object] = {
        "r": target.reference,
        "u": target.user,
        "e": target.expires,
    }
    if target.layer is not None:
        fields["l"] = target.layer
    if target.path is not None:
        fields["p"] = target.path
    if target.layer is None and target.path is None:
        raise LinkError("a link names a layer, a file, or both")
    body = _b64(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    return f"{body}.{_b64(_mac(secret, body))}"


def verify(secret: bytes, token: str, now: float) -> LinkTarget:
    """The target of a token signed with ``secret``; LinkError if it was changed or is
    malformed, LinkExpired once ``now`` is past its expiry."""
    body, _, signature = token.partition(".")
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise LinkError("this download link is malformed; ask for a new one") from None
    if not hmac.compare_digest(given, _mac(secret, body)):
        raise LinkError("this download link is not valid (it was changed); ask for a new one")
    target = _decode(body)
    if now >= target.expires:
        raise LinkExpired("this download link has expired; ask for a new one")
    return target


def _decode(body: str) -> LinkTarget:
    """The signed fields; a signed token that does not parse was made by another version."""
    try:
        fields = json.loads(_unb64(body))
        path, layer = fields.get("p"), fields.get("l")
        return LinkTarget(
            reference=str(fields["r"]),
            layer=None if layer is None else int(layer),
            path=None if path is None else str(path),
            user=int(fields["u"]),
            expires=int(fields["e"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError, AttributeError):
        raise LinkError("this download link is malformed; ask for a new one") from None
