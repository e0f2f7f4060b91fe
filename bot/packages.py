"""``/packages image [filter]``: what an image has installed, a line a package with its
version and the layer that installed it, and a summary line a kind, in pages like /peek's;
``/diff base target packages:true``: what changed in them, a line a change.

The answers and their embeds live here (``answers`` and ``render`` hold the other commands'):
one core call, the inventory (filtered by a name fragment), or two and their changes. Their
page buttons are ``views.ResultPageButton``s carrying a state key (the images pinned by
digest, the filter), so any page is the same images' however much later, and after a
restart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import discord

from layerpeek.bot import answers
from layerpeek.bot import discord_limits as limits
from layerpeek.bot.answers import BotContext, page_span, pinned
from layerpeek.bot.render import (
    COLOUR,
    LINE,
    _footer,
    _lines_within,
    more_of,
    untrusted,
    warnings,
)
from layerpeek.bot.reply import Reply
from layerpeek.bot.views import result_pages
from layerpeek.core.packages.changes import PackageChanges, change_line, package_changes, summary
from layerpeek.core.packages.inventory import inventory
from layerpeek.core.packages.model import KINDS, DatabaseProblem, Package, PackageReport
from layerpeek.core.text import counted, human_size, short_digest

UNREAD_SHOWN = 3


async def packages(
    ctx: BotContext,
    user: int,
    image: str,
    filter: str | None = None,
    platform: str | None = None,
    private: bool = False,
) -> Reply:
    """The first page of the installed packages of ``image`` whose names contain ``filter``."""
    resolved = await ctx.peek.resolve(image, platform)
    report = await inventory(ctx.peek, resolved)
    key = await ctx.state.put({"packages": pinned(resolved), "filter": filter or ""})
    reply = _reply(ctx, key, report, filter or "", 0)
    reply.ephemeral = private
    return reply


async def packages_page(ctx: BotContext, data: dict[str, Any], key: str, number: int) -> Reply:
    """A button's page of the packages a /packages message shows."""
    report = await inventory(ctx.peek, await ctx.peek.resolve(data["packages"]))
    return _reply(ctx, key, report, data.get("filter", ""), number)


def _reply(ctx: BotContext, key: str, report: PackageReport, filter: str, number: int) -> Reply:
    size = ctx.settings.page_size
    needle = filter.casefold()
    matching = [p for p in report.packages if needle in p.name.casefold()]
    number, last, page = page_span(number, len(matching), size)
    shown = matching[number * size : (number + 1) * size]
    embed = packages_embed(report, matching, filter, shown, page)
    return Reply(embeds=[embed], view=result_pages(key, number, last))


def packages_embed(
    report: PackageReport,
    matching: list[Package],
    filter: str,
    shown: list[Package],
    page: str,
) -> discord.Embed:
    """Counts by kind first (they always fit), databases not read, then the page's lines;
    ``page`` names the page in the title (``answers.page_span``: nothing on a single page)."""
    counts = Counter(p.kind for p in matching)
    summary = [f"**{kind}** {counted(counts[kind], 'package')}" for kind in KINDS if counts[kind]]
    head = "\n".join(summary) or "no packages found"
    if filter:
        head = f"names containing {untrusted(filter, 60)}:\n{head}"
    top = warnings(report.problems) + _unread([("", d) for d in report.databases])
    lines = [limits.clip(_line(p), LINE) for p in shown]
    budget = limits.EMBED_DESCRIPTION - len(top) - len(head) - 40
    body = _lines_within(lines, budget, more_of("package", tail=" on this page"))
    listing = f"\n```\n{body}\n```" if body else ""
    cost = f"{human_size(report.bytes_read)} read from {report.files_read} files"
    footer = _footer(report.platform, report.digest) + untrusted(f" · {cost}", 80, "plain")
    return discord.Embed(
        title=untrusted(f"Packages of {report.reference}", 220) + (f" · {page}" if page else ""),
        description=f"{top}{head}{listing}",
        colour=COLOUR,
    ).set_footer(text=footer)


def _line(package: Package) -> str:
    arch = f" {package.arch}" if package.arch else ""
    text = f"{package.kind:6} {package.name} {package.version}{arch} (layer {package.layer})"
    return untrusted(text, LINE, "code")


def _unread(databases: list[tuple[str, DatabaseProblem]]) -> str:
    """A warning line per database not read (the first few), each after where it is."""
    lines = [
        f"⚠️ not read{where}: {untrusted(d.path, 120)} (layer {d.layer}): "
        f"{untrusted(d.message, 160)}"
        for where, d in databases[:UNREAD_SHOWN]
    ]
    if len(databases) > UNREAD_SHOWN:
        lines.append(f"… and {len(databases) - UNREAD_SHOWN} more not read")
    return "".join(line + "\n" for line in lines)


# -- /diff packages:true ------------------------------------------------------------------------


async def diff(
    ctx: BotContext,
    user: int,
    base: str,
    target: str,
    packages: bool = False,
    private: bool = False,
) -> Reply:
    """The /diff answer: what changed in the files (``answers.diff``) or, with ``packages``,
    in the installed packages, as ``layerpeek diff A B --packages`` answers (it costs the two
    inventories, so only when asked)."""
    if not packages:
        return await answers.diff(ctx, user, base, target, private)
    return await answers.compared(ctx, "package-diff", base, target, changes_page, private)


async def changes_page(ctx: BotContext, data: dict[str, Any], key: str, number: int) -> Reply:
    """Page ``number`` of a stored package diff: its counts, then a page of its changes."""
    reports = [await inventory(ctx.peek, await ctx.peek.resolve(p)) for p in data["package-diff"]]
    names = dict(zip("ab", data["names"], strict=True))
    changes = package_changes(*reports).model_copy(update=names)
    size = ctx.settings.page_size
    number, last, page = page_span(number, len(changes.changes), size)
    embed = changes_embed(changes, reports, number * size, size, page)
    return Reply(embeds=[embed], view=result_pages(key, number, last))


def changes_embed(
    changes: PackageChanges, reports: list[PackageReport], start: int, size: int, page: str
) -> discord.Embed:
    """Databases not read and the counts first (they always fit), then the page of ``size``
    changes from ``start``, as many of them as fit."""
    problems = [p for r in reports for p in r.problems]
    unread = [
        (f" in {untrusted(name, 60)}", d)
        for name, r in zip((changes.a, changes.b), reports, strict=True)
        for d in r.databases
    ]
    top = warnings(problems) + _unread(unread)
    head = f"{counted(len(changes.changes), 'package change')}: {summary(changes)}"
    shown = changes.changes[start : start + size]
    lines = [untrusted(change_line(c), LINE, "code") for c in shown]
    budget = limits.EMBED_DESCRIPTION - len(top) - len(head) - 40
    body = _lines_within(lines, budget, more_of("change", tail=" on this page"))
    digests = " → ".join(short_digest(r.digest) for r in reports)
    cost = sum(r.bytes_read for r in reports), sum(r.files_read for r in reports)
    read = f"{human_size(cost[0])} read from {counted(cost[1], 'file')}"
    return discord.Embed(
        title=f"Packages {untrusted(changes.a, 110)} → {untrusted(changes.b, 110)}"
        + (f" · {page}" if page else ""),
        description=f"{top}{head}\n```diff\n{body or '(no changes)'}\n```",
        colour=COLOUR,
    ).set_footer(text=untrusted(f"{digests} · {read}", 300, "plain"))
