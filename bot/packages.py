"""``/packages image [filter]``: what an image has installed, a line a package with its
version and the layer that installed it, and a summary line a kind, in pages like /peek's.

The answer and its embed live here (``answers`` and ``render`` hold the other commands'):
one core call, the inventory, filtered by a name fragment. Its page buttons are
``views.ResultPageButton``s carrying a state key (the image pinned by digest, the filter), so
any page is the same image's however much later, and after a restart."""

from __future__ import annotations

from collections import Counter
from typing import Any

import discord

from layerpeek.bot import discord_limits as limits
from layerpeek.bot.answers import BotContext, pinned
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
from layerpeek.core.errors import LayerpeekError
from layerpeek.core.packages.inventory import inventory
from layerpeek.core.packages.model import KINDS, Package, PackageReport
from layerpeek.core.text import counted, human_size

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
    if "packages" not in data:
        raise LayerpeekError("these buttons belong to another kind of message")
    report = await inventory(ctx.peek, await ctx.peek.resolve(data["packages"]))
    return _reply(ctx, key, report, data.get("filter", ""), number)


def _reply(ctx: BotContext, key: str, report: PackageReport, filter: str, number: int) -> Reply:
    size = ctx.settings.page_size
    needle = filter.casefold()
    matching = [p for p in report.packages if needle in p.name.casefold()]
    last = max(0, (len(matching) - 1) // size)
    number = min(number, last)
    shown = matching[number * size : (number + 1) * size]
    embed = packages_embed(report, matching, filter, shown, f"page {number + 1} of {last + 1}")
    return Reply(embeds=[embed], view=result_pages(key, number, last))


def packages_embed(
    report: PackageReport,
    matching: list[Package],
    filter: str,
    shown: list[Package],
    where: str,
) -> discord.Embed:
    """Counts by kind first (they always fit), databases not read, then the page's lines."""
    counts = Counter(p.kind for p in matching)
    summary = [f"**{kind}** {counted(counts[kind], 'package')}" for kind in KINDS if counts[kind]]
    head = "\n".join(summary) or "no packages found"
    if filter:
        head = f"names containing {untrusted(filter, 60)}:\n{head}"
    unread = [
        f"⚠️ not read: {untrusted(d.path, 120)} (layer {d.layer}): {untrusted(d.message, 160)}"
        for d in report.databases[:UNREAD_SHOWN]
    ]
    if len(report.databases) > UNREAD_SHOWN:
        unread.append(f"… and {len(report.databases) - UNREAD_SHOWN} more not read")
    top = warnings(report.problems) + "".join(line + "\n" for line in unread)
    lines = [limits.clip(_line(p), LINE) for p in shown]
    budget = limits.EMBED_DESCRIPTION - len(top) - len(head) - 40
    body = _lines_within(lines, budget, more_of("package", tail=" on this page"))
    listing = f"\n```\n{body}\n```" if body else ""
    cost = f"{human_size(report.bytes_read)} read from {report.files_read} files"
    footer = _footer(report.platform, report.digest) + untrusted(f" · {cost}", 80, "plain")
    return discord.Embed(
        title=untrusted(f"Packages of {report.reference}", 220) + f" · {where}",
        description=f"{top}{head}{listing}",
        colour=COLOUR,
    ).set_footer(text=footer)


def _line(package: Package) -> str:
    arch = f" {package.arch}" if package.arch else ""
    text = f"{package.kind:6} {package.name} {package.version}{arch} (layer {package.layer})"
    return untrusted(text, LINE, "code")
