"""The exception tree of layerpeek, and the one place that turns an HTTP response into an error.

Every error a user can cause or meet carries a one-line message that says what was wrong, in
words that name no front end's syntax. What a user could try instead is data on the error
(``PlatformNotFound.available``, ``FileNotInLayer.readable_layers``): each front end phrases it
in its own syntax (``hints.with_hint``). No traceback, no token, no header ever reaches a user
through these messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import httpx


class LayerpeekError(Exception):
    """Base of every error layerpeek raises on purpose; its text is fit to show a user."""


class InvalidReference(LayerpeekError):
    """An image reference, repository name, digest or platform string that cannot be parsed."""


class NetworkRefused(LayerpeekError):
    """The network guard refused an address (loopback, private, link-local) not allow-listed."""


class RegistryUnreachable(LayerpeekError):
    """A registry or token server could not be reached at all (DNS, refused, TLS, timeout)."""


class RegistryTooSlow(RegistryUnreachable):
    """A registry (or its token server) kept us past a deadline or below the minimum rate."""


@dataclass
class RegistryErrorDetail:
    """One entry of the registry's ``{"errors": [...]}`` body (OCI distribution spec)."""

    code: str
    message: str


class RegistryError(LayerpeekError):
    """The registry answered with an error status; ``codes`` are the spec's error codes."""

    def __init__(self, message: str, status: int = 0, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


class NotFound(RegistryError):
    """A repository, tag, manifest or blob the registry does not have (404, *_UNKNOWN)."""


class Unauthorized(RegistryError):
    """The registry refused our credentials or demanded some we do not have (401/403)."""


class RateLimited(RegistryError):
    """The registry said 429 and the wait it asked for is longer than we are willing to wait."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message, status=429, codes=("TOOMANYREQUESTS",))
        self.retry_after = retry_after


class ServerError(RegistryError):
    """The registry kept failing with 5xx after every retry."""


class RangeNotSupported(LayerpeekError):
    """The registry answered a Range request with the whole blob (or not at all)."""


class PlatformNotFound(LayerpeekError):
    """An index has no entry for the wanted platform; ``available`` lists what it has."""

    def __init__(self, message: str, available: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.available = available


class DigestMismatch(LayerpeekError):
    """Bytes received do not hash to the digest they were asked for by."""


class ManifestError(LayerpeekError):
    """A manifest, index or config that is not what its media type promises."""


class LayerError(LayerpeekError):
    """A layer blob that cannot be read as a tar stream; ``offset`` says how far it got.

    ``offset`` counts compressed bytes consumed, ``entries`` the tar entries read before the
    failure, so a user can tell a cut-off download from a corrupt blob.
    """

    def __init__(self, message: str, offset: int = 0, entries: int = 0) -> None:
        super().__init__(message)
        self.offset = offset
        self.entries = entries


class TruncatedLayer(LayerError):
    """The compressed or tar stream ended before its own structure said it would."""


class CorruptLayer(LayerError):
    """The stream is not valid gzip / zstd / tar (bad magic, bad checksum, bad data)."""


class HostileLayer(LayerError):
    """The tar stream tries to exhaust us: oversized extended headers, absurd sizes."""


class LayerTooLarge(HostileLayer):
    """A layer listing more entries, or more characters of names, than one layer may hold
    (``layers.entry.LAYER_LIMITS``)."""


class ImageTooLarge(LayerpeekError):
    """An image whose layers together list more entries, or more characters of names, than
    a whole-image listing may hold (``layers.entry.IMAGE_LIMITS``)."""


class FileNotInLayer(LayerpeekError):
    """A read of a path that no layer (or not the asked layer) holds as a regular file.

    ``path`` is the path as asked, ``layer`` the layer asked (None for the merged view).
    ``deleted_in``: the layer that removed the path from the merged view. ``readable_layers``:
    the layers below it that still ship a regular file under the asked name, so a read of
    that layer's copy returns it. ``merged``: a read without a layer reaches a file (a
    layer's own symlink is not followed; a hard link can name a file of an earlier layer).
    """

    def __init__(
        self,
        message: str,
        *,
        path: str = "",
        layer: int | None = None,
        deleted_in: int | None = None,
        readable_layers: tuple[int, ...] = (),
        merged: bool = False,
    ) -> None:
        super().__init__(message)
        self.path = path
        self.layer = layer
        self.deleted_in = deleted_in
        self.readable_layers = readable_layers
        self.merged = merged


class PackageDataError(LayerpeekError):
    """A package database or manifest that is damaged, too large or in a format not read:
    reported beside the inventory, whose other sources still answer."""


# What ``json.loads`` raises for a body that is not JSON: ValueError (UnicodeDecodeError
# included), and RecursionError for one nested deeper than the interpreter's stack ("[[[[…").
JSON_ERRORS = (ValueError, RecursionError)
# What httpx raises, outside its transport errors, for an odd URL (a host it cannot encode, a
# control character in a path), a redirect chain without end or a body its decoder refuses.
HTTPX_ERRORS = (httpx.InvalidURL, httpx.TooManyRedirects, httpx.DecodingError)


def library_error(exc: Exception, what: str) -> LayerpeekError:
    """The typed error for one of ``HTTPX_ERRORS`` met while fetching ``what``."""
    if isinstance(exc, httpx.InvalidURL):
        return InvalidReference(f"cannot request {what}: {exc}")
    if isinstance(exc, httpx.DecodingError):
        return RegistryError(f"the registry's answer for {what} does not decode: {exc}")
    return RegistryError(f"{what}: {exc}")


def _error_details(response: httpx.Response) -> list[RegistryErrorDetail]:
    """Parse the spec's error body; registries and proxies often send HTML or nothing."""
    try:
        body = json.loads(response.content or b"{}")
    except JSON_ERRORS:
        return []
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return []
    return [
        RegistryErrorDetail(str(e.get("code", "")), str(e.get("message", "")))
        for e in errors
        if isinstance(e, dict)
    ]


REASONS_SHOWN = 3
REASON_CHARS = 200
"""A registry's reasons in an error line: the first few, each clipped, so one line stays one
line however many (or however long) reasons a registry sends."""


def _describe(details: list[RegistryErrorDetail], status: int, phrase: str) -> str:
    if not details:
        return f"HTTP {status} {phrase}".rstrip()
    said = [
        _clip(f"{d.code}: {d.message}" if d.message else d.code) for d in details[:REASONS_SHOWN]
    ]
    more = len(details) - REASONS_SHOWN
    return "; ".join(said) + (f"; and {more} more" if more > 0 else "")


def _clip(text: str) -> str:
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def error_from_response(response: httpx.Response, what: str) -> RegistryError:
    """Turn a failed registry response into a typed error about ``what`` was asked for.

    ``what`` names the object ("manifest docker.io/library/alpine:3.20"), so the one-line
    message says both what we looked for and what the registry said, with its error code.
    The response body must already be read.
    """
    status = response.status_code
    details = _error_details(response)
    codes = tuple(d.code for d in details)
    said = _describe(details, status, response.reason_phrase)
    if status == 404 or any(c.endswith("_UNKNOWN") for c in codes):
        return NotFound(f"{what} not found ({said})", status, codes)
    if status in (401, 403):
        return Unauthorized(f"access to {what} denied ({said})", status, codes)
    if status == 429:
        return RateLimited(f"rate limited while fetching {what} ({said})")
    if status >= 500:
        return ServerError(f"registry failed on {what} ({said})", status, codes)
    return RegistryError(f"registry refused {what} ({said})", status, codes)
