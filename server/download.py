"""``download_link``: a signed URL a person can open to get a layer blob or one file.

A tool answer cannot carry a layer (they run to gigabytes), so the model hands the person a
link instead. The link pins the image by its platform manifest digest and is served by any
layerpeek link endpoint with the same LAYERPEEK_LINK_SECRET: the HTTP MCP server's own
``/d/...`` route, or the bot's link server for an MCP server on stdio.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from layerpeek.core.fs.read import FileCopy
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.text import human_size
from layerpeek.links.settings import LinkSettings
from layerpeek.server.common import AppContext, PlatformArg, Reference, result, state
from layerpeek.server.errors import tool_errors
from layerpeek.server.models import DownloadLink

NOTHING_NAMED = (
    "name what to download: layer=N for a layer blob, path=... for one file as the image "
    "shows it, or both for the file as layer N ships it"
)


def quota_owner(links: LinkSettings) -> str | None:
    """Whose downloads a link counts against in the endpoint's limit: the bearer token the
    call came with, or (None) the link alone when there is none (stdio; HTTP without
    LAYERPEEK_MCP_TOKEN), since then callers cannot be told apart and one shared count would
    let one caller's downloads refuse everyone else's links."""
    token = get_access_token()
    return None if token is None else links.quota_key(token.token)


async def _file(ctx: AppContext, image: ResolvedImage, layer: int | None, path: str) -> FileCopy:
    """The file the link will serve, found now as the endpoint will find it (links followed
    in the merged view), so a missing file is refused here, not with a 404 later."""
    return await state(ctx).peek.locate(image, path, layer)


def _blob_size(image: ResolvedImage, layer: int) -> int:
    size = image.manifest.layers[layer].size
    if size <= 0:  # a blob is never empty; the endpoint would refuse this layer
        raise ToolError(
            f"layer {layer}: the manifest gives its size as {size} bytes; a layer blob has "
            "at least one, so the image's manifest is wrong"
        )
    return size


def _what(image: ResolvedImage, layer: int | None, path: str | None, size: int) -> str:
    where = f"layer {layer} of {image.reference} ({image.platform})"
    if path is None:
        return f"{where}, {human_size(size)}, as the registry stores it (a compressed tar)"
    if layer is None:
        return f"{path} as {image.reference} ({image.platform}) shows it, {human_size(size)}"
    return f"{path} as {where} ships it, {human_size(size)}"


async def download_link(
    reference: Reference,
    ctx: AppContext,
    layer: Annotated[
        int | None,
        Field(description="layer index (-1 is the top): alone, its blob; with path, its copy"),
    ] = None,
    path: Annotated[
        str | None,
        Field(description="a file, e.g. /etc/os-release (without layer: the image's own copy)"),
    ] = None,
    platform: PlatformArg = None,
) -> Annotated[CallToolResult, DownloadLink]:
    """An expiring link to a layer blob or one file, for the user to download what is too
    big for an answer; pass layer, path or both. Cost: a file is found by listing every
    layer (cached); nothing is downloaded until the link is opened."""
    links = state(ctx).links
    assert links is not None  # registered only when links are configured
    if layer is None and path is None:
        raise ToolError(NOTHING_NAMED)
    with tool_errors():
        image = await state(ctx).peek.resolve(reference, platform)
        index = image.layer(layer) if layer is not None else None
        if path is not None:
            copy = await _file(ctx, image, index, path)
            size = copy.size
        else:
            assert index is not None  # one of the two was given
            copy, size = None, _blob_size(image, index)
        if size > links.max_bytes:
            raise ToolError(
                f"that is {human_size(size)}, more than the {human_size(links.max_bytes)} "
                "download links serve (LAYERPEEK_LINK_MAX_BYTES, an operator setting)"
            )
        pinned = f"{image.reference.name}@{image.manifest.digest}"
        link = links.signed(pinned, index, path, quota_owner(links), time.time())
    answer = DownloadLink(
        url=link.url,
        expires_at=datetime.fromtimestamp(link.expires, UTC).isoformat(),
        size=size,
        digest=image.manifest.layers[index].digest if path is None and index is not None else None,
        what=_what(image, index, copy.shown if copy is not None else None, size),
    )
    return result(answer, [answer.url, f"{answer.what}; valid until {answer.expires_at}"])
