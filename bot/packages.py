"""``/packages image [filter]``: what an image has installed, a line a package with its
version and the layer that installed it, and a summary line a kind.

The answer and its embed live here (``answers`` and ``render`` hold the other commands'):
one core call, the inventory, filtered by a name fragment."""

from __future__ import annotations

from collections import Counter

import discord

from layerpeek.bot import discord_limits as limits
from layerpeek.bot.answers import BotContext
from layerpeek.bot.render import COLOUR, LINE, _footer, _lines_within, untrusted, warnings
from layerpeek.bot.reply import Reply
from layerpeek.core.packages.inventory import inventory
from layerpeek.core.packages.model import KINDS, Package, PackageReport
from layerpeek.core.text import human_size

UNREAD_SHOWN = 3


async def packages(
    ctx: BotContext,
    user: int,
    image: str,
    filter: str | None = None,
    platform: str | None = None,
    private: bool = False,
) -> Reply:
    """The installed packages of ``image`` whose names contain ``filter``."""
    report = await inventory(ctx.peek, await ctx.peek.resolve(image, platform))
    return Reply(embeds=[packages_embed(report, filter or "")], ephemeral=private)


def packages_embed(report: PackageReport, filter: str = "") -> discord.Embed:
    """Counts by kind first (they always fit), databases not read, then as many package
    lines as fit."""
    needle = filter.casefold()
    matching = [p for p in report.packages if needle in p.name.casefold()]
    counts = Counter(p.kind for p in matching)
    summary = [f"**{kind}** {counts[kind]} packages" for kind in KINDS if counts[kind]]
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
    lines = [limits.clip(_line(p), LINE) for p in matching]
    budget = limits.EMBED_DESCRIPTION - len(top) - len(head) - 40
    body = _lines_within(lines, budget, "… {} more packages: narrow with filter")
    listing = f"\n```\n{body}\n```" if body else ""
    cost = f"{human_size(report.bytes_read)} read from {report.files_read} files"
    return discord.Embed(
        title="Packages of " + untrusted(report.reference, 230),
        description=f"{top}{head}{listing}",
        colour=COLOUR,
    ).set_footer(
        text=_footer(report.platform, report.digest) + untrusted(f" · {cost}", 80, "plain")
    )


def _line(package: Package) -> str:
    arch = f" {package.arch}" if package.arch else ""
    text = f"{package.kind:6} {package.name} {package.version}{arch} (layer {package.layer})"
    return untrusted(text, LINE, "code")
