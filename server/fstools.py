"""Tools over the merged filesystem: find, provenance, removed files, diff, triage.

The core computes each answer whole (it needs every layer's listing anyway); these tools page
the long lists of that answer and cut long build steps, so one result stays small.
"""

from __future__ import annotations

from typing import Annotated

from mcp.types import CallToolResult
from pydantic import Field

from layerpeek.core.fs.find import FindSpec
from layerpeek.core.layers.entry import EntryType
from layerpeek.core.models import PathTrace
from layerpeek.core.paging import window
from layerpeek.server import render
from layerpeek.server.common import (
    DEFAULT_STEP_CHARS,
    AppContext,
    CursorArg,
    PlatformArg,
    Reference,
    cut_steps,
    onward,
    result,
    resume,
    state,
)
from layerpeek.server.cursor import query_hash
from layerpeek.server.errors import tool_errors
from layerpeek.server.models import DiffPage, FindPage, RemovedPage, TriagePage

Limit = Annotated[int, Field(ge=1, le=200, description="items per page")]


async def find_files(
    reference: Reference,
    pattern: Annotated[
        str,
        Field(description="glob on the path or name ('*.pem', 'etc/ssl/*'), or RE2 with regex"),
    ],
    ctx: AppContext,
    regex: Annotated[bool, Field(description="pattern is a regular expression")] = False,
    types: Annotated[list[EntryType] | None, Field(description="only these entry types")] = None,
    min_size: Annotated[
        str | None, Field(description="at least this size, e.g. 512, 10K, 1.5M, 2G")
    ] = None,
    max_size: Annotated[str | None, Field(description="at most this size")] = None,
    merged: Annotated[
        bool,
        Field(
            description="search the final filesystem only (default: every layer, deleted files too)"
        ),
    ] = False,
    platform: PlatformArg = None,
    limit: Limit = 30,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, FindPage]:
    """Search every layer for paths by glob or regex, type and size; each match names the
    layer shipping it and its story (added, changed, deleted by which step), so files
    deleted later but still shipped are found. Cost: reads every layer whole (cached)."""
    app = state(ctx)
    with tool_errors():
        spec = FindSpec.parse(pattern, regex, list(types or []), min_size, max_size)
        image = await app.peek.resolve(reference, platform)
        ref = image.reference
        query = query_hash(
            "find",
            ref.registry,
            ref.repository,
            platform,
            spec.pattern,
            regex,
            sorted(spec.types),
            spec.min_size,
            spec.max_size,
            merged,
        )
        at = resume(app.cursors, cursor, "find", query, image.manifest.digest)
        found = await app.peek.find(image, spec, merged, int(at["s"]) if at else 0, limit)
    next_cursor = onward(app.cursors, "find", query, image.manifest.digest, found.next_start)
    answer = FindPage(find=cut_steps(found, DEFAULT_STEP_CHARS), next_cursor=next_cursor)
    return result(answer, render.find_text(answer))


async def trace_path(
    reference: Reference,
    path: Annotated[str, Field(description="the path to trace, e.g. /etc/passwd")],
    ctx: AppContext,
    platform: PlatformArg = None,
    max_step_chars: Annotated[
        int, Field(ge=40, le=20000, description="cut build steps longer than this")
    ] = 300,
) -> Annotated[CallToolResult, PathTrace]:
    """Where one path comes from: each layer that added, changed, deleted or hid it and the
    build step that did, whether the image still has it, and the layers whose copy
    read_file can read. Cost: reads every layer whole (cached)."""
    app = state(ctx)
    with tool_errors():
        image = await app.peek.resolve(reference, platform)
        trace = cut_steps(await app.peek.trace(image, path), max_step_chars)
    return result(trace, render.trace_text(trace))


async def removed_files(
    reference: Reference,
    ctx: AppContext,
    platform: PlatformArg = None,
    limit: Limit = 30,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, RemovedPage]:
    """Files a later layer deleted or overwrote that a lower layer still ships (every pull
    downloads them), largest first, with the steps that made and removed them; read_file
    with their layer reads them. Cost: reads every layer whole (cached)."""
    app = state(ctx)
    with tool_errors():
        image = await app.peek.resolve(reference, platform)
        ref = image.reference
        query = query_hash("removed", ref.registry, ref.repository, platform)
        at = resume(app.cursors, cursor, "removed", query, image.manifest.digest)
        report = await app.peek.removed_files(image)
    files, after = window(report.files, int(at["s"]) if at else 0, limit)
    shown = cut_steps(report.model_copy(update={"files": files}), DEFAULT_STEP_CHARS)
    next_cursor = onward(app.cursors, "removed", query, image.manifest.digest, after)
    answer = RemovedPage(removed=shown, total_files=len(report.files), next_cursor=next_cursor)
    return result(answer, render.removed_text(answer))


async def diff_images(
    a: Annotated[str, Field(description="the image before")],
    ctx: AppContext,
    b: Annotated[
        str | None, Field(description="the image after; omit to compare a's platforms")
    ] = None,
    platform: Annotated[
        str | None, Field(description="platform of a (and of b by default)")
    ] = None,
    platform_b: Annotated[str | None, Field(description="platform of b")] = None,
    limit: Limit = 100,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, DiffPage]:
    """What changed from image a to image b (or between two platforms of a): paths added,
    removed and changed (type, size, mode, owner, link), and the layers both share. Cost:
    reads every layer of both whole (cached)."""
    app = state(ctx)
    with tool_errors():
        first = await app.peek.resolve(a, platform)
        second = await app.peek.resolve(b or a, platform_b or platform)
        digests = f"{first.manifest.digest} {second.manifest.digest}"
        query = query_hash("diff", a, b, platform, platform_b)
        at = resume(app.cursors, cursor, "diff", query, digests)
        report = await app.peek.diff(first, second)
    items = [*report.added, *report.removed, *report.changed]
    start = int(at["s"]) if at else 0
    shown, after = window(items, start, limit)
    added, removed = len(report.added), len(report.removed)
    on_page = range(start, start + len(shown))
    diff = report.model_copy(
        update={
            "added": [items[i] for i in on_page if i < added],
            "removed": [items[i] for i in on_page if added <= i < added + removed],
            "changed": [items[i] for i in on_page if i >= added + removed],
        }
    )
    next_cursor = onward(app.cursors, "diff", query, digests, after)
    answer = DiffPage(
        diff=diff,
        total_added=added,
        total_removed=removed,
        total_changed=len(report.changed),
        next_cursor=next_cursor,
    )
    platforms = (str(first.platform), str(second.platform))
    return result(answer, render.diff_text(answer, platforms))


async def triage_image(
    reference: Reference,
    ctx: AppContext,
    platform: PlatformArg = None,
    largest: Annotated[
        int, Field(ge=1, le=50, description="how many of the largest files to list")
    ] = 10,
    limit: Limit = 50,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, TriagePage]:
    """A first security look: secrets (also deleted but shipped), setuid/setgid and
    world-writable paths, root user, OS, largest files, bytes shipped for deleted files.
    Cost: reads every layer whole (cached)."""
    app = state(ctx)
    with tool_errors():
        image = await app.peek.resolve(reference, platform)
        ref = image.reference
        query = query_hash("triage", ref.registry, ref.repository, platform, largest)
        at = resume(app.cursors, cursor, "triage", query, image.manifest.digest)
        report = await app.peek.triage(image, largest)
    findings, after = window(report.findings, int(at["s"]) if at else 0, limit)
    shown = cut_steps(report.model_copy(update={"findings": findings}), DEFAULT_STEP_CHARS)
    next_cursor = onward(app.cursors, "triage", query, image.manifest.digest, after)
    answer = TriagePage(triage=shown, total_findings=len(report.findings), next_cursor=next_cursor)
    return result(answer, render.triage_text(answer))


FS_TOOLS = (find_files, trace_path, removed_files, diff_images, triage_image)
