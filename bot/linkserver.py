"""The download-link endpoint: ``GET /d/{token}`` streams a layer blob or one file.

Layers are often larger than Discord's upload limit, so the bot hands out signed links
(core/links.py) instead of attachments. The endpoint verifies the token, counts the download
against the rate limit of the person who made the link, refuses blobs over the size cap, and
relays bytes from the registry through the core as they arrive (nothing is kept on disk).
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

from .answers import attachment_name
from .ratelimit import SlidingWindow
from .settings import BotSettings


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
    """The ASGI app and what it needs: the bot's Layerpeek, its settings, a clock."""

    def __init__(
        self, peek: Layerpeek, settings: BotSettings, clock: Callable[[], float] = time.time
    ) -> None:
        assert settings.link_secret is not None
        self.peek = peek
        self.settings = settings
        self.secret = settings.link_secret.get_secret_value().encode()
        self.clock = clock
        self.downloads = SlidingWindow(settings.link_user_rate, 3600.0, clock)
        self.app = Starlette(routes=[Route("/d/{token}", self.download, methods=["GET"])])

    async def download(self, request: Request) -> Response:
        try:
            target = verify(self.secret, request.path_params["token"], self.clock())
            wait = self.downloads.wait(target.user)
            if wait:
                return _refuse(429, f"too many downloads from these links: retry in {wait:.0f} s")
            image = await self.peek.resolve(target.reference)
            if target.path is None:
                assert target.layer is not None  # sign() refuses a link naming neither
                return self._blob(image, target.layer)
            return await self._file(image, target)
        except LayerpeekError as error:
            return _refuse(_status(error), str(error))

    def _blob(self, image: ResolvedImage, layer: int) -> Response:
        descriptor = image.manifest.layers[image.layer(layer)]
        if descriptor.size > self.settings.link_max_bytes:
            return _refuse(
                413,
                f"layer {layer} is {human_size(descriptor.size)}, more than the "
                f"{human_size(self.settings.link_max_bytes)} these links serve",
            )
        digest = short_digest(descriptor.digest).replace(":", "-")
        name = f"layer-{layer}-{digest}{_suffix(descriptor.media_type)}"
        headers = {"Content-Length": str(descriptor.size), **_disposition(name)}
        return StreamingResponse(
            self.peek.stream_layer(image, layer),
            headers=headers,
            media_type=descriptor.media_type or "application/octet-stream",
        )

    async def _file(self, image: ResolvedImage, target: LinkTarget) -> Response:
        """Read the first chunk before answering, so a missing file is a 404, not a cut
        stream; then relay the rest, cut off at the size cap."""
        assert target.path is not None
        stream = self.peek.read_file(image, target.path, target.layer)
        try:
            first = await anext(stream, b"")
        except BaseException:
            await stream.aclose()
            raise
        body = _capped(first, stream, self.settings.link_max_bytes)
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
