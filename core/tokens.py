"""Signed tokens: a few fields that a client carries and hands back, which it cannot change.

Download links and the MCP server's paging cursors are both such tokens:
``base64url(JSON fields) "." base64url(HMAC-SHA256 of that text)``, the signature cut to
:data:`SIGNATURE_BYTES`. Each front end phrases the two failures (:class:`TokenMalformed`,
:class:`TokenAltered`) for its own readers. Pure functions apart from :func:`kept_key`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from layerpeek.core.errors import LayerpeekError

SIGNATURE_BYTES = 16
"""128 bits of HMAC-SHA256: plenty against forgery, and short in a URL."""
SIGNATURE_CHARS = (SIGNATURE_BYTES * 8 + 5) // 6  # unpadded base64url: 6 bits a character
KEY_BYTES = 32
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class TokenMalformed(LayerpeekError):
    """Not a token this codec writes (cut, mangled, or not a token at all)."""


class TokenAltered(TokenMalformed):
    """A well-formed token whose signature does not match: changed, or signed with another key."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, body: str) -> str:
    return _b64(hmac.new(key, body.encode(), hashlib.sha256).digest()[:SIGNATURE_BYTES])


def sign(key: bytes, fields: dict[str, Any]) -> str:
    """The token carrying ``fields`` (JSON values), signed with ``key``."""
    text = json.dumps(fields, separators=(",", ":"), ensure_ascii=False)
    body = _b64(text.encode())
    return f"{body}.{_mac(key, body)}"


def verify(key: bytes, token: str) -> dict[str, Any]:
    """The fields of a token signed with ``key``; TokenAltered if its signature does not
    match, TokenMalformed if it is not a token at all."""
    body, _, signature = token.partition(".")
    # The decoder would skip junk characters and surplus "=", so several spellings would pass
    # for one signature; only the one sign() writes is accepted, compared in constant time.
    if len(signature) != SIGNATURE_CHARS or not _BASE64URL.fullmatch(signature):
        raise TokenMalformed("not a signed token")
    if not hmac.compare_digest(signature.encode(), _mac(key, body).encode()):
        raise TokenAltered("the token's signature does not match")
    try:
        fields = json.loads(_unb64(body))
    except (binascii.Error, ValueError):
        raise TokenMalformed("a signed token that does not parse") from None
    if not isinstance(fields, dict):
        raise TokenMalformed("a signed token that does not parse")
    return fields


def kept_key(directory: Path, name: str) -> bytes:
    """A random key kept in ``directory/name`` (mode 0600), made the first time it is asked
    for: every process using that directory signs and checks with the same key, also after
    a restart. Two processes starting at once agree on the first file written."""
    path = directory / name
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        handle, scratch = tempfile.mkstemp(dir=directory, prefix=f".{name}.")  # mode 0600
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(secrets.token_bytes(KEY_BYTES))
            os.link(scratch, path)  # fails if another process got there first: use its key
        except FileExistsError:
            pass
        finally:
            os.unlink(scratch)
    key = path.read_bytes()
    if len(key) < KEY_BYTES:
        raise LayerpeekError(f"the key file {path} is damaged: delete it to make a new one")
    return key
