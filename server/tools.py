"""The tools. Each resolves its arguments, makes its core call and formats the answer.

The docstrings are the descriptions a model reads; parameter descriptions come from the
``Field`` annotations. Every list is paged by ``limit`` and an opaque ``cursor``, and the
defaults keep one answer to a few thousand tokens.
"""

from __future__ import annotations

import base64
import bisect
import codecs
from collections.abc import Callable
from typing import Annotated, Any, Literal

from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult
from pydantic import Field

from layerpeek.core.filehead import read_head
from layerpeek.core.image.resolve import ResolvedImage
from layerpeek.core.models import EntryInfo, LayerProblem, marks
from layerpeek.core.paging import Match, Position, filtered_page
from layerpeek.server import render
from layerpeek.server.common import (
    AppContext,
    CursorArg,
    PlatformArg,
    Reference,
    count_long_steps,
    cut_steps,
    result,
    resume,
    state,
)
from layerpeek.server.cursor import RESTART, query_hash
from layerpeek.server.errors import tool_errors
from layerpeek.server.models import FileContent, FilePage, InspectResult, TagPage
from layerpeek.server.paging import matcher, normal_prefix, path_matcher
from layerpeek.server.progress import ProgressRelay

At = dict[str, Any] | None
"""A decoded cursor's position (None: the first page)."""
LayerArg = Annotated[
    int | None,
    Field(description="layer index from inspect_image (-1 is the top); omit for every layer"),
]


# -- inspect_image ---------------------------------------------------------------------------


async def inspect_image(
    reference: Reference,
    ctx: AppContext,
    platform: PlatformArg = None,
    all_platforms: Annotated[
        bool,
        Field(description="every platform side by side instead"),
    ] = False,
    max_step_chars: Annotated[
        int,
        Field(ge=40, le=20000, description="cut build steps longer than this"),
    ] = 300,
) -> Annotated[CallToolResult, InspectResult]:
    """Start here: the digest a tag resolves to, platforms, each layer's index, size and
    build step, history and config (env, entrypoint, cmd, user, ports, labels). Cheap:
    reads the manifest and config, no layer."""
    peek = state(ctx).peek
    with tool_errors():
        if all_platforms:
            platforms = await peek.inspect_platforms(reference)
            answer = InspectResult(image=None, all_platforms=platforms, cut_steps=0)
            return result(answer, render.platforms_text(platforms))
        report = await peek.inspect(reference, platform)
    cut = count_long_steps(report, max_step_chars)
    report = cut_steps(report, max_step_chars)
    answer = InspectResult(image=report, all_platforms=None, cut_steps=cut)
    return result(answer, render.image_text(report))


# -- list_files ------------------------------------------------------------------------------


Listed = tuple[list[EntryInfo], At, list[LayerProblem]]
"""A page's entries, where the next one starts, and the damaged layers it met."""


async def _layer_page(
    ctx: AppContext, image: ResolvedImage, layer: int | None, match: Match, limit: int, at: At
) -> Listed:
    """A page of one layer or all layers in tar order; the position is (layer, entry)."""
    layers = [image.layer(layer)] if layer is not None else list(range(len(image.manifest.layers)))
    start = Position(int(at["l"]), int(at["p"])) if at else Position(layers[0], 0)
    if start.layer not in layers:
        raise ToolError(f"cursor points outside this listing; {RESTART}")
    relay = ProgressRelay(ctx, [image.manifest.layers[i].size for i in layers])
    found = await filtered_page(state(ctx).peek, image, layers, start, limit, match, relay)
    after = {"l": found.next.layer, "p": found.next.entry} if found.next else None
    return found.entries, after, found.problems


async def _merged_page(
    ctx: AppContext, image: ResolvedImage, where: Callable[[str], bool] | None, limit: int, at: At
) -> Listed:
    """A page of the merged filesystem (sorted by path), a slice of its kept view; the
    position is an index into the paths ``where`` accepts."""
    start = int(at["p"]) if at else 0
    merged = await state(ctx).peek.merged_listing(image, start, limit, where)
    after = merged.next_start
    return merged.entries, {"p": after} if after is not None else None, merged.problems


async def list_files(
    reference: Reference,
    ctx: AppContext,
    layer: LayerArg = None,
    merged: Annotated[
        bool,
        Field(description="the filesystem the container sees (deletions applied, by path) instead"),
    ] = False,
    platform: PlatformArg = None,
    path_prefix: Annotated[
        str,
        Field(description="only paths starting with this, e.g. 'etc/' or 'usr/lib/libssl'"),
    ] = "",
    glob: Annotated[
        str | None,
        Field(description="shell pattern on the whole path ('*' matches '/' too: '*.conf')"),
    ] = None,
    limit: Annotated[int, Field(ge=1, le=200, description="entries per page")] = 100,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, FilePage]:
    """Browse the files of one layer, of every layer bottom-up (whiteouts are deletions),
    or with merged=true of the final filesystem. Cost: a first page reads the start of a
    layer; filters, later pages and merged may read every layer whole (cached)."""
    if merged and layer is not None:
        raise ToolError("merged lists the whole image: pass either merged or layer, not both")
    app = state(ctx)
    prefix = normal_prefix(path_prefix)
    match, where = matcher(prefix, glob), path_matcher(prefix, glob)
    with tool_errors():
        image = await app.peek.resolve(reference, platform)
        ref = image.reference
        query = query_hash(
            "files", ref.registry, ref.repository, platform, layer, merged, prefix, glob
        )
        at = resume(app.cursors, cursor, "files", query, image.manifest.digest)
        if merged:
            entries, after, problems = await _merged_page(ctx, image, where, limit, at)
        else:
            entries, after, problems = await _layer_page(ctx, image, layer, match, limit, at)
    next_cursor = None
    if after is not None:
        next_cursor = app.cursors.encode("files", query, d=image.manifest.digest, **after)
    answer = FilePage(
        reference=str(image.reference),
        digest=image.manifest.digest,
        platform=str(image.platform),
        layer=image.layer(layer) if layer is not None else None,
        merged=merged,
        entries=entries,
        next_cursor=next_cursor,
        **marks(problems),
    )
    return result(answer, render.file_page_text(answer))


# -- read_file -------------------------------------------------------------------------------


def _as_text(data: bytes, complete: bool) -> str | None:
    """UTF-8 text without NUL bytes, or None; a character cut by truncation is left out."""
    if b"\0" in data:
        return None
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=complete)
    except UnicodeDecodeError:
        return None


async def read_file(
    reference: Reference,
    path: Annotated[str, Field(description="path in the image, e.g. /etc/os-release")],
    ctx: AppContext,
    layer: Annotated[
        int | None,
        Field(
            description="read this layer's copy (even one deleted later); omit for the image's own"
        ),
    ] = None,
    platform: PlatformArg = None,
    max_bytes: Annotated[
        int, Field(ge=1, le=65536, description="text bytes returned at most")
    ] = 16384,
    binary_preview_bytes: Annotated[
        int, Field(ge=0, le=8192, description="binary bytes previewed at most")
    ] = 256,
    binary_encoding: Annotated[
        Literal["hex", "base64"], Field(description="encoding of a binary preview")
    ] = "hex",
    follow: Annotated[
        bool,
        Field(description="follow a symlink at path itself"),
    ] = True,
) -> Annotated[CallToolResult, FileContent]:
    """One file's contents: text (up to max_bytes) or a hex/base64 preview of a binary,
    with its size and sha256; symlinks followed inside the image (read_path). Cost: reads
    the layer holding the file up to it, after listing every layer (cached)."""
    peek = state(ctx).peek
    with tool_errors():
        image = await peek.resolve(reference, platform)
        copy = await peek.locate(image, path, layer, follow=follow)
        keep = max(max_bytes, binary_preview_bytes)
        head = await read_head(peek.read(image, copy), keep, whole=True)
    assert head.size is not None and head.sha256 is not None  # read whole
    size = head.size
    text = _as_text(head.data[:max_bytes], complete=size <= max_bytes)
    encoding: Literal["utf-8", "hex", "base64"]
    if text is not None:
        returned, encoding, content = len(text.encode()), "utf-8", text
    else:
        preview = head.data[:binary_preview_bytes]
        returned, encoding = len(preview), binary_encoding
        content = preview.hex() if encoding == "hex" else base64.b64encode(preview).decode()
    answer = FileContent(
        reference=str(image.reference),
        digest=image.manifest.digest,
        path=path,
        read_path=copy.path,
        links_followed=list(copy.links),
        layer=layer,
        size=size,
        sha256=head.sha256,
        kind="text" if text is not None else "binary",
        encoding=encoding,
        content=content,
        returned_bytes=returned,
        truncated=returned < size,
    )
    return result(answer, render.file_text(answer))


# -- list_tags -------------------------------------------------------------------------------


async def list_tags(
    repository: Annotated[
        str,
        Field(description="repository without tag, e.g. alpine or ghcr.io/org/app"),
    ],
    ctx: AppContext,
    limit: Annotated[int, Field(ge=1, le=1000, description="tags per page")] = 200,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, TagPage]:
    """A repository's tags, sorted, to find the tag to inspect. Cheap: one registry call."""
    app = state(ctx)
    query = query_hash("tags", repository.strip())
    after = str(app.cursors.decode(cursor, "tags", query)["a"]) if cursor else None
    with tool_errors():
        tags = await app.peek.tags(repository)
    start = bisect.bisect_right(tags, after) if after is not None else 0
    shown = tags[start : start + limit]
    more = start + limit < len(tags)
    next_cursor = app.cursors.encode("tags", query, a=shown[-1]) if more else None
    answer = TagPage(repository=repository, tags=shown, total=len(tags), next_cursor=next_cursor)
    return result(answer, render.tags_text(answer))


TOOLS = (inspect_image, list_files, read_file, list_tags)
"""Registered in this order; each is read-only and reaches out to registries (open world)."""
