"""``list_packages``: what an image has installed, paged and filtered by name or kind;
``diff_packages``: what changed in them from one image to another.

The core reads the inventory whole (its databases are few and small); the tool filters it
and pages the packages, keeping on every page the inventory's problems and what it cost.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from mcp.types import CallToolResult
from pydantic import BaseModel, Field

from layerpeek.core.packages.changes import PackageChanges, package_changes
from layerpeek.core.packages.inventory import inventory
from layerpeek.core.packages.model import KINDS, Kind, Package, PackageReport
from layerpeek.core.paging import window
from layerpeek.core.text import human_size
from layerpeek.server.common import (
    AppContext,
    CursorArg,
    PlatformArg,
    Reference,
    onward,
    result,
    resume,
    state,
)
from layerpeek.server.cursor import query_hash
from layerpeek.server.errors import tool_errors
from layerpeek.server.models import NEXT_CURSOR
from layerpeek.server.render import MAX_TEXT_ROWS, incomplete

MAX_NAME = 200


class PackagePage(BaseModel):
    packages: PackageReport = Field(
        description="this page's packages (those matching the filter, by kind and name), with "
        "the whole inventory's problems and the bytes it read"
    )
    total: int = Field(description="packages matching the filter")
    counts: dict[str, int] = Field(description="packages matching the filter, by kind")
    next_cursor: str | None = Field(description=NEXT_CURSOR)


async def list_packages(
    reference: Reference,
    ctx: AppContext,
    name: Annotated[
        str | None,
        Field(description="only names containing this (any case)", max_length=MAX_NAME),
    ] = None,
    kinds: Annotated[
        list[Kind] | None, Field(description=f"only these kinds ({', '.join(KINDS)})")
    ] = None,
    platform: PlatformArg = None,
    limit: Annotated[int, Field(ge=1, le=500, description="packages per page")] = 100,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, PackagePage]:
    """Installed packages (dpkg, apk, rpm, Python, Node, Go modules): name, version, arch,
    the layer that installed it, package URL; databases not read are named. Cost: lists
    every layer (cached), then reads only the package databases."""
    app = state(ctx)
    wanted = tuple(k for k in KINDS if k in (kinds or KINDS))
    needle = (name or "").casefold()
    with tool_errors():
        image = await app.peek.resolve(reference, platform)
        ref = image.reference
        query = query_hash("packages", ref.registry, ref.repository, platform, needle, wanted)
        at = resume(app.cursors, cursor, "packages", query, image.manifest.digest)
        report = await inventory(app.peek, image, wanted)
    matching = [p for p in report.packages if needle in p.name.casefold()]
    shown, after = window(matching, int(at["s"]) if at else 0, limit)
    answer = PackagePage(
        packages=report.model_copy(update={"packages": shown}),
        total=len(matching),
        counts=dict(Counter(p.kind for p in matching)),
        next_cursor=onward(app.cursors, "packages", query, image.manifest.digest, after),
    )
    return result(answer, packages_text(answer))


class PackageChangesPage(BaseModel):
    changes: PackageChanges = Field(description="this page's share of the changes")
    total: int = Field(description="changes in all")
    counts: dict[str, int] = Field(description="changes by kind of change")
    unread: list[str] = Field(
        description="databases of either image not read (damaged, too large, old formats)"
    )
    next_cursor: str | None = Field(description=NEXT_CURSOR)


async def diff_packages(
    a: Annotated[str, Field(description="the image before")],
    b: Annotated[str, Field(description="the image after")],
    ctx: AppContext,
    platform: Annotated[
        str | None, Field(description="platform of a (and of b by default)")
    ] = None,
    platform_b: Annotated[str | None, Field(description="platform of b")] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="changes per page")] = 100,
    cursor: CursorArg = None,
) -> Annotated[CallToolResult, PackageChangesPage]:
    """Packages added, removed, upgraded and downgraded from image a to image b (each
    package manager's version order), with both versions and the layer of b that installed
    each. Cost: as list_packages, for both images."""
    app = state(ctx)
    with tool_errors():
        first = await app.peek.resolve(a, platform)
        second = await app.peek.resolve(b, platform_b or platform)
        digests = f"{first.manifest.digest} {second.manifest.digest}"
        query = query_hash("package-diff", a, b, platform, platform_b)
        at = resume(app.cursors, cursor, "package-diff", query, digests)
        before, after = await inventory(app.peek, first), await inventory(app.peek, second)
    changes = package_changes(before, after)
    shown, following = window(changes.changes, int(at["s"]) if at else 0, limit)
    answer = PackageChangesPage(
        changes=changes.model_copy(update={"changes": shown}),
        total=len(changes.changes),
        counts=dict(Counter(c.change for c in changes.changes)),
        unread=[
            f"{r.reference}: {d.path} (layer {d.layer}): {d.message}"
            for r in (before, after)
            for d in r.databases
        ],
        next_cursor=onward(app.cursors, "package-diff", query, digests, following),
    )
    return result(answer, changes_text(answer))


def changes_text(answer: PackageChangesPage) -> list[str]:
    changes = answer.changes
    counts = ", ".join(f"{n} {change}" for change, n in sorted(answer.counts.items()))
    head = f"{changes.a} -> {changes.b}: {counts or 'no changes'}, {changes.unchanged} unchanged"
    rows = [
        f"  {c.change} {c.kind} {c.name} "
        + " -> ".join(v for v in (c.before, c.after) if v is not None)
        for c in changes.changes[:MAX_TEXT_ROWS]
    ]
    unread = [f"NOT READ: {line}" for line in answer.unread]
    following = "more: call again with cursor=next_cursor" if answer.next_cursor else "end"
    return [*unread, head, *rows, following]


def packages_text(answer: PackagePage) -> list[str]:
    report = answer.packages
    counts = ", ".join(f"{answer.counts[k]} {k}" for k in KINDS if k in answer.counts)
    head = (
        f"{answer.total} packages in {report.reference} ({counts or 'none'}); "
        f"{human_size(report.bytes_read)} read from {report.files_read} files"
    )
    rows = [_row(p) for p in report.packages[:MAX_TEXT_ROWS]]
    more = len(report.packages) - len(rows)
    tail = [f"... {more} more packages in the structured content"] if more > 0 else []
    unread = [f"NOT READ: {d.path} (layer {d.layer}): {d.message}" for d in report.databases]
    following = "more: call again with cursor=next_cursor" if answer.next_cursor else "end"
    return [*incomplete(report.problems), *unread, head, *rows, *tail, following]


def _row(package: Package) -> str:
    arch = f" {package.arch}" if package.arch else ""
    return f"  {package.kind} {package.name} {package.version}{arch}  layer {package.layer}"


PACKAGE_TOOLS = (list_packages, diff_packages)
