"""The download-link endpoint: ``GET /d/{token}`` streams a layer blob or one file.

Layers are often larger than a chat upload or a tool answer can hold, so the front ends hand
out signed links (core/links.py) instead. The endpoint verifies the token, counts the download
against the quota the link names (a person, a credential, or the link itself), refuses blobs
whose manifest size is not positive or is over the size cap, and relays bytes from the
registry through the core as they arrive (nothing is kept on disk). The last piece is held
back until the source has ended cleanly (for a blob: its digest checked), so bytes that are
not what the link names end in a failed transfer, never a complete one. ``HEAD`` answers the
headers a ``GET`` would, without a body and without spending the quota.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from layerpeek.core.errors import (
    DigestMismatch,
    FileNotInLayer,
    LayerpeekError,
    ManifestError,
    NotFound,
)
from layerpeek.core.image.manifest import Descriptor
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.links import LinkError, LinkExpired, LinkTarget, verify
from layerpeek.core.service import Layerpeek
from layerpeek.core.text import human_size, printable, short_digest
from layerpeek.links.settings import ROUTE, LinkSettings
from layerpeek.links.window import SlidingWindow

OCTETS = "application/octet-stream"


def attachment_name(path: str) -> str:
    """A safe file name to save under, from an untrusted path (its last component)."""
    name = path.rstrip("/").rpartition("/")[2]
    clean = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)
    return clean.strip(".")[:80] or "file"


def _refuse(status: int, message: str) -> Response:
    return PlainTextResponse(printable(message) + "\n", status_code=status)


def _status(error: LayerpeekError) -> int:
    if isinstance(error, LinkExpired):
        return 410
    if isinstance(error, LinkError):
        return 403
    if isinstance(error, NotFound | FileNotInLayer):
        return 404
    return 502


def _suffix(media_type: str) -> str:
    """What a saved layer is called by its media type (blobs carry no name of their own)."""
    if "gzip" in media_type:
        return ".tar.gz"
    return ".tar.zst" if "zstd" in media_type else ".tar"


def _disposition(name: str) -> dict[str, str]:
    return {"Content-Disposition": f'attachment; filename="{name}"'}


class LinkServer:
    """The endpoint and what it needs: a Layerpeek, the link settings, a clock.

    ``peek`` may be set after construction: the MCP server's HTTP app (which mounts
    ``download``) is built before the lifespan that owns its core starts.
    """

    def __init__(
        self,
        peek: Layerpeek | None,
        settings: LinkSettings,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.peek = peek
        self.settings = settings
        self.clock = clock
        self.downloads = SlidingWindow(settings.user_rate, 3600.0, clock)

    @property
    def route(self) -> Route:
        """``GET`` and (as Starlette adds it to every GET route) ``HEAD``."""
        return Route(ROUTE, self.download, methods=["GET"])

    @property
    def app(self) -> Starlette:
        """The endpoint alone, for a process that serves nothing else (the bot)."""
        return Starlette(routes=[self.route])

    async def download(self, request: Request) -> Response:
        if self.peek is None:
            return _refuse(503, "the link server is starting; try again in a moment")
        token: str = request.path_params["token"]
        head = request.method == "HEAD"
        try:
            target = verify(self.settings.key, token, self.clock())
            # A HEAD (a link preview, a size check) reads no blob, so it spends no download;
            # it still says 429 when a GET would be refused.
            wait = self.downloads.wait(_quota(target, token), record=not head)
            if wait:
                return _refuse(429, f"too many downloads from these links: retry in {wait:.0f} s")
            image = await self.peek.resolve(target.reference)
            if target.path is None:
                assert target.layer is not None  # sign() refuses a link naming neither
                return self._blob(self.peek, image, target.layer, head)
            return await self._file(self.peek, image, target, head)
        except LayerpeekError as error:
            return _refuse(_status(error), str(error))

    def _blob(self, peek: Layerpeek, image: ResolvedImage, layer: int, head: bool) -> Response:
        descriptor = image.manifest.layers[image.layer(layer)]
        _check_size(descriptor, layer)
        if descriptor.size > self.settings.max_bytes:
            return _refuse(
                413,
                f"layer {layer} is {human_size(descriptor.size)}, more than the "
                f"{human_size(self.settings.max_bytes)} these links serve",
            )
        digest = short_digest(descriptor.digest).replace(":", "-")
        name = f"layer-{layer}-{digest}{_suffix(descriptor.media_type)}"
        headers = {"Content-Length": str(descriptor.size), **_disposition(name)}
        body = _nothing() if head else _relay(peek.stream_layer(image, layer), descriptor.size)
        return StreamingResponse(body, headers=headers, media_type=descriptor.media_type or OCTETS)

    async def _file(
        self, peek: Layerpeek, image: ResolvedImage, target: LinkTarget, head: bool
    ) -> Response:
        """Read the first chunk before answering, so a missing file is a 404, not a cut
        stream; then relay the rest, cut off at the size cap. A HEAD reads nothing: the link
        was signed for a file its maker saw in this very image (it is pinned by digest)."""
        assert target.path is not None
        headers = _disposition(attachment_name(target.path))
        if head:
            return StreamingResponse(_nothing(), headers=headers, media_type=OCTETS)
        stream = peek.read_file(image, target.path, target.layer)
        try:
            first = await anext(stream, b"")
        except BaseException:
            await stream.aclose()
            raise
        body = _relay(_prepend(first, stream), self.settings.max_bytes, exact=False)
        return StreamingResponse(body, headers=headers, media_type=OCTETS)


def _quota(target: LinkTarget, token: str) -> int | str:
    """Whose downloads this is: the user the link names, or the link itself when it names
    none (an MCP server without a bearer token gives every link a quota of its own)."""
    return token if target.user is None else target.user


def _check_size(descriptor: Descriptor, layer: int) -> None:
    """A layer blob is never empty (even an empty tar is 1 KiB), and a size that is not
    positive would make the response's Content-Length a lie: refuse before sending."""
    if descriptor.size <= 0:
        raise ManifestError(
            f"layer {layer}: the manifest gives its size as {descriptor.size} bytes; "
            "a layer blob has at least one, so the image's manifest is wrong"
        )


async def _nothing() -> AsyncGenerator[bytes, None]:
    """The body of a HEAD answer: the server sends headers only."""
    return
    yield


async def _prepend(first: bytes, rest: AsyncGenerator[bytes, None]) -> AsyncGenerator[bytes, None]:
    try:
        yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


async def _relay(
    chunks: AsyncGenerator[bytes, None], limit: int, exact: bool = True
) -> AsyncGenerator[bytes, None]:
    """``chunks`` one behind: each goes out when the next has arrived, and the last only once
    the source has ended without an error (``stream_layer`` checks the digest there), and,
    when ``exact``, after exactly ``limit`` bytes; never more than ``limit``.

    An error raised here once the headers are out makes the server drop the connection short
    of the Content-Length or of the last chunk: the client sees a failed transfer, where the
    whole body followed by an error would have looked like a complete, good download.
    """
    held, sent = b"", 0
    try:
        async for chunk in chunks:
            sent += len(chunk)
            if sent > limit:
                raise _too_long(limit, exact)
            if held:
                yield held
            held = chunk
        if exact and sent != limit:
            raise DigestMismatch(
                f"the registry sent {sent} of the {limit} bytes the manifest gives"
            )
        if held:
            yield held
    finally:
        await chunks.aclose()


def _too_long(limit: int, exact: bool) -> LayerpeekError:
    if exact:
        return DigestMismatch(f"the registry sent more than the {limit} bytes the manifest gives")
    return LayerpeekError(f"the file is larger than the {human_size(limit)} links serve")
