"""Signed, expiring download links: a layer blob or one file of an image, named in a token.

A front end (the Discord bot, later the MCP server) hands people a URL that its own small HTTP
endpoint serves. The token says exactly what may be fetched, for whom and until when, and is
signed (``core.tokens``) so nobody can change the image, layer, path or expiry. Pure
functions: no clock, no I/O — the caller passes ``now``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from layerpeek.core import tokens
from layerpeek.core.errors import LayerpeekError

MIN_SECRET_BYTES = 16


class LinkError(LayerpeekError):
    """A download link that cannot be honoured: tampered, malformed or expired."""


class LinkExpired(LinkError):
    """The link was valid once; its time is up."""


@dataclass(frozen=True)
class LinkTarget:
    """What a link serves: the blob of layer ``layer`` of ``reference`` (pinned by digest), or
    the file ``path`` as that layer ships it (``layer`` None: as the image sees it).

    ``user`` is whose download quota the link spends: a person's id (the bot's Discord
    users), an opaque key for a credential (an MCP bearer token, never the token itself: a
    link's fields are readable by anyone who has it), or None for a quota of the link's own.
    """

    reference: str
    layer: int | None
    path: str | None
    user: int | str | None
    expires: int


def _checked(secret: bytes) -> bytes:
    if len(secret) < MIN_SECRET_BYTES:
        raise LinkError(f"the link secret must be at least {MIN_SECRET_BYTES} bytes long")
    return secret


def sign(secret: bytes, target: LinkTarget) -> str:
    """The URL-safe token for ``target`` (``core.tokens``)."""
    fields: dict[str, object] = {"r": target.reference, "e": target.expires}
    if target.user is not None:
        fields["u"] = target.user
    if target.layer is not None:
        fields["l"] = target.layer
    if target.path is not None:
        fields["p"] = target.path
    if target.layer is None and target.path is None:
        raise LinkError("a link names a layer, a file, or both")
    return tokens.sign(_checked(secret), fields)


def verify(secret: bytes, token: str, now: float) -> LinkTarget:
    """The target of a token signed with ``secret``; LinkError if it was changed or is
    malformed, LinkExpired once ``now`` is past its expiry."""
    try:
        target = _target(tokens.verify(_checked(secret), token))
    except tokens.TokenAltered:
        raise LinkError(
            "this download link is not valid (it was changed); ask for a new one"
        ) from None
    except tokens.TokenMalformed:
        raise LinkError("this download link is malformed; ask for a new one") from None
    if now >= target.expires:
        raise LinkExpired("this download link has expired; ask for a new one")
    return target


def _target(fields: dict[str, Any]) -> LinkTarget:
    """The signed fields; a signed token that does not parse was made by another version."""
    try:
        path, layer, user = fields.get("p"), fields.get("l"), fields.get("u")
        return LinkTarget(
            reference=str(fields["r"]),
            layer=None if layer is None else int(layer),
            path=None if path is None else str(path),
            user=user if user is None or isinstance(user, str) else int(user),
            expires=int(fields["e"]),
        )
    except (ValueError, KeyError, TypeError):
        raise tokens.TokenMalformed("a signed token that does not parse") from None
