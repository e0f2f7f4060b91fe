"""``LAYERPEEK_LINK_*``: one set of link settings for every layerpeek process.

A link signed by one process is served by any other that has the same secret (the MCP server
over stdio signs links that the bot's or an HTTP MCP server's endpoint serves), so the names
are shared rather than per front end.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from layerpeek.core.links import LinkTarget, sign
from layerpeek.core.settings import EnvSettings

ROUTE = "/d/{token}"
"""Where an endpoint serves links; a link is the public base URL plus this path."""


@dataclass(frozen=True)
class SignedLink:
    url: str
    expires: int
    """Unix time after which the endpoint refuses the link."""


class LinkSettings(EnvSettings):
    """What an operator sets for download links; fields map to ``LAYERPEEK_LINK_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="LAYERPEEK_LINK_")

    url: str | None = Field(
        default=None,
        description="public base URL of a link endpoint; links are offered only when it and "
        "the secret are set",
    )
    secret: SecretStr | None = Field(
        default=None, description="HMAC key for download links (at least 16 bytes)"
    )
    hours: float = Field(default=24.0, gt=0, description="hours a download link stays valid")
    max_bytes: int = Field(
        default=2 << 30, ge=1, description="largest layer or file a link will stream"
    )
    user_rate: int = Field(default=10, ge=1, description="downloads per link maker per hour")

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.secret)

    @property
    def key(self) -> bytes:
        assert self.secret is not None
        return self.secret.get_secret_value().encode()

    def quota_key(self, credential: str) -> str:
        """Who a link made for the holder of ``credential`` counts against, named so that
        the credential cannot be read back: a link's fields are readable by whoever has it.
        Keyed with the link secret, so every endpoint that serves the link agrees."""
        mac = hmac.new(self.key, b"quota\0" + credential.encode(), hashlib.sha256)
        return "k:" + mac.hexdigest()[:16]

    def signed(
        self,
        reference: str,
        layer: int | None,
        path: str | None,
        user: int | str | None,
        now: float,
    ) -> SignedLink:
        """A link to ``layer`` and/or ``path`` of ``reference`` (pin it by digest, so the link
        serves the bytes the person was shown), valid from ``now``, whose downloads count
        against ``user`` (None: against the link alone)."""
        assert self.url is not None
        expires = int(now + self.hours * 3600)
        token = sign(self.key, LinkTarget(reference, layer, path, user, expires))
        return SignedLink(self.url.rstrip("/") + ROUTE.format(token=token), expires)
