"""The download-link endpoint: ``GET /d/{token}`` streams a layer blob or one file.

Layers are often larger than a chat upload or a tool answer can hold, so the front ends hand
out signed links (core/links.py) instead. The endpoint verifies the token, counts the download
against the rate limit of whoever made the link, refuses blobs over the size cap, and relays
bytes from the registry through the core as they arrive (nothing is kept on disk).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from layerpeek.core.errors import FileNotInLayer, LayerpeekError, NotFound
from layerpeek.core.links import LinkError, LinkExpired, LinkTarget, verify
from layerpeek.core.service import Layerpeek, ResolvedImage
from layerpeek.core.text import human_size, printable, short_digest

from .settings import ROUTE, LinkSettings
from .window import SlidingWindow


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
        return Route(ROUTE, self.download, methods=["GET"])

    @property
    def app(self) -> Starlette:
        """The endpoint alone, for a process that serves nothing else (the bot)."""
        return Starlette(routes=[self.route])

    async def download(self, request: Request) -> Response:
        if self.peek is None:
            return _refuse(503, "the link server is starting; try again in a moment")
        try:
            target = verify(self.settings.key, request.path_params["token"], self.clock())
            wait = self.downloads.wait(target.user)
            if wait:
                return _refuse(429, f"too many downloads from these links: retry in {wait:.0f} s")
            image = await self.peek.resolve(target.reference)
            if target.path is None:
                assert target.layer is not None  # sign() refuses a link naming neither
                return self._blob(self.peek, image, target.layer)
            return await self._file(self.peek, image, target)
        except LayerpeekError as error:
            return _refuse(_status(error), str(error))

    def _blob(self, peek: Layerpeek, image: ResolvedImage, layer: int) -> Response:
        descriptor = image.manifest.layers[image.layer(layer)]
        if descriptor.size > self.settings.max_bytes:
            return _refuse(
                413,
                f"layer {layer} is {human_size(descriptor.size)}, more than the "
                f"{human_size(self.settings.max_bytes)} these links serve",
            )
        digest = short_digest(descriptor.digest).replace(":", "-")
        name = f"layer-{layer}-{digest}{_suffix(descriptor.media_type)}"
        headers = {"Content-Length": str(descriptor.size), **_disposition(name)}
        return StreamingResponse(
            peek.stream_layer(image, layer),
            headers=headers,
            media_type=descriptor.media_type or "application/octet-stream",
        )

    async def _file(self, peek: Layerpeek, image: ResolvedImage, target: LinkTarget) -> Response:
        """Read the first chunk before answering, so a missing file is a 404, not a cut
        stream; then relay the rest, cut off at the size cap."""
        assert target.path is not None
        stream = peek.read_file(image, target.path, target.layer)
        try:
            first = await anext(stream, b"")
        except BaseException:
            await stream.aclose()
            raise
        body = _capped(first, stream, self.settings.max_bytes)
        return StreamingResponse(
            body,
            headers=_disposition(attachment_name(target.path)),
            media_type="application/octet-stream",
        )


async def _capped(first: bytes, rest: AsyncIterator[bytes], cap: int) -> AsyncIterator[bytes]:
    """The file's bytes; past ``cap`` the response is aborted (the client sees a cut
    transfer, not a silently truncated file)."""
    sent = len(first)
    try:
        if sent > cap:
            raise LayerpeekError(f"the file is larger than the {human_size(cap)} links serve")
        yield first
        async for chunk in rest:
            sent += len(chunk)
            if sent > cap:
                raise LayerpeekError(f"the file is larger than the {human_size(cap)} links serve")
            yield chunk
    finally:
        await rest.aclose()  # type: ignore[attr-defined]
